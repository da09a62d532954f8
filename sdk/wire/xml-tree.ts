/**
 * The one XML reader: fast-xml-parser's well-formedness check and its order-keeping parse, turned
 * into a tree of elements. Text XML contexts (wire/xml.ts) and FetchXML (the host's query
 * compiler) both read through it. No value is coerced: attributes and text stay strings.
 */
import { XMLParser, XMLValidator } from "fast-xml-parser";

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  /** The element's own text, CDATA included, entities and character references decoded. */
  text: string;
}

export interface XmlReadOptions {
  /** Trim the text of each element. */
  trim: boolean;
  /** Deepest nesting read; deeper is refused with `tooDeep()`. @default 256 */
  maxDepth?: number;
  /** The error for a document that is not well-formed. */
  malformed: (problem: string, line: number, column: number) => Error;
  tooDeep?: () => Error;
}

const parsers = new Map<boolean, XMLParser>();

function parserFor(trim: boolean): XMLParser {
  let parser = parsers.get(trim);
  if (!parser) {
    parser = new XMLParser({
      preserveOrder: true,
      ignoreAttributes: false,
      attributeNamePrefix: "",
      parseAttributeValue: false,
      parseTagValue: false,
      trimValues: trim,
      ignoreDeclaration: true,
      ignorePiTags: true,
      // Also decodes numeric character references (&#65; &#x41;), which XML allows anywhere.
      htmlEntities: true,
    });
    parsers.set(trim, parser);
  }
  return parser;
}

type Parsed = Array<Record<string, unknown>>;

function toElements(parsed: Parsed, depth: number, options: XmlReadOptions): XmlElement[] {
  if (depth > (options.maxDepth ?? 256)) throw options.tooDeep?.() ?? options.malformed(`elements nest more than ${options.maxDepth ?? 256} levels deep`, 0, 0);
  const elements: XmlElement[] = [];
  for (const item of parsed) {
    const name = Object.keys(item).find((k) => k !== ":@");
    if (name === undefined || name === "#text") continue;
    const body = item[name];
    const children = Array.isArray(body) ? (body as Parsed) : [];
    const attributes: Record<string, string> = {};
    const raw = item[":@"];
    if (raw && typeof raw === "object") for (const [k, v] of Object.entries(raw as Record<string, unknown>)) attributes[k] = String(v);
    let text = "";
    for (const c of children) if ("#text" in c) text += String(c["#text"]);
    elements.push({ name, attributes, children: toElements(children, depth + 1, options), text });
  }
  return elements;
}

/** The document's top-level elements; a DOCTYPE is refused (no entity expansion from the document). */
export function readXmlTree(text: string, options: XmlReadOptions): XmlElement[] {
  const doctype = /<!DOCTYPE/i.exec(text);
  if (doctype) {
    const before = text.slice(0, doctype.index).split("\n");
    throw options.malformed("DOCTYPE is not allowed", before.length, before.at(-1)!.length + 1);
  }
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw options.malformed(valid.err.msg, valid.err.line, valid.err.col);
  return toElements(parserFor(options.trim).parse(text) as Parsed, 0, options);
}
