/** The messages the organization service implements, one module each, by name. */
import { associate, disassociate } from "./associate.js";
import { assign } from "./assign.js";
import { create } from "./create.js";
import { deleteMessage } from "./delete.js";
import type { Message } from "./message.js";
import { retrieve } from "./retrieve.js";
import { retrieveMultiple } from "./retrieve-multiple.js";
import { setState } from "./set-state.js";
import { update } from "./update.js";
import { upsert } from "./upsert.js";
import { whoAmI } from "./who-am-i.js";

export type { Message, MessageOperation, MessageServices } from "./message.js";
export { primaryRecord, type PrimaryRecord } from "./primary.js";

export const messages: ReadonlyMap<string, Message> = new Map(
  [create, retrieve, update, deleteMessage, associate, disassociate, retrieveMultiple, upsert, setState, assign, whoAmI].map((m) => [m.name, m]),
);
