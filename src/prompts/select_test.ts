import assert from "node:assert/strict";
import { InputError } from "../errors.ts";
import { selectPrompts } from "./select.ts";
import type { PromptSpec } from "./spec.ts";

const specs: PromptSpec[] = [
  { id: "bond", prompt: "bond", extra: { Category: "Abstract", Challenge: "Basic" } },
  { id: "shiba", prompt: "a shiba inu", extra: { Category: "Animals", Challenge: "Basic" } },
  {
    id: "fox",
    prompt: "a fox",
    mood: "calm",
    extra: { Category: "Animals", tags: ["red", "wild"] },
  },
  { id: "pho", prompt: "a bowl of Pho", extra: { Category: "Food & Beverage" } },
];

const ids = (only: string[]) => selectPrompts(specs, only).map((s) => s.id);

Deno.test("selectPrompts() takes ids, and FIELD=VALUE of the context ignoring case, in file order", () => {
  assert.deepEqual(ids([]), ["bond", "shiba", "fox", "pho"]);
  assert.deepEqual(ids(["fox", "bond"]), ["bond", "fox"]);
  assert.deepEqual(ids(["Category=Animals"]), ["shiba", "fox"]);
  assert.deepEqual(ids(["category=animals"]), ["shiba", "fox"]);
  assert.deepEqual(ids(["Category=Food & Beverage", "bond"]), ["bond", "pho"]);
  assert.deepEqual(ids(["mood=calm"]), ["fox"]);
  assert.deepEqual(ids(["tags=wild"]), ["fox"]);
});

function messageOf(only: string[]): string {
  try {
    selectPrompts(specs, only);
  } catch (error) {
    assert.ok(error instanceof InputError);
    return error.message;
  }
  assert.fail("expected an InputError");
}

Deno.test("selectPrompts() says what an entry could have matched", () => {
  assert.match(
    messageOf(["wolf"]),
    /'wolf' matched no prompt id: known ids are bond, shiba, fox, pho; to select by a field, write FIELD=VALUE/,
  );
  assert.match(
    messageOf(["Category=Animls"]),
    /'Category=Animls' matched no prompt: values of 'Category' include 'Abstract', 'Animals', 'Food & Beverage'/,
  );
  assert.match(
    messageOf(["Kind=x"]),
    /no prompt has a field 'Kind': fields are Category, Challenge, mood, tags/,
  );
});
