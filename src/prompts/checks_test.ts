import assert from "node:assert/strict";
import { checkKindOf, checksFromInclude, givenBrief, isInclude } from "./checks.ts";

Deno.test("givenBrief() numbers a prompt's own checks c1, c2, … in the file's order", () => {
  assert.deepEqual(
    givenBrief({
      checks: [
        { question: "Is there a rubix cube?", kind: "entity" },
        { question: "Is the rubix cube purple?", kind: "attribute" },
      ],
    }),
    {
      checks: [
        { id: "c1", question: "Is there a rubix cube?", kind: "entity" },
        { id: "c2", question: "Is the rubix cube purple?", kind: "attribute" },
      ],
    },
  );
  assert.equal(givenBrief({}), undefined);
  assert.equal(givenBrief({ checks: [] }), undefined);
});

Deno.test("checkKindOf() maps DSG's categories, and retake's own kinds as they are", () => {
  const cases: Array<[string, string | undefined, string]> = [
    ["entity", "whole", "entity"],
    ["entity", "part", "entity"],
    ["attribute", "color", "attribute"],
    ["attribute", "count", "count"],
    ["other", "count", "count"],
    ["other", "text rendering", "text"],
    ["attribute", "style", "style"],
    ["global", "-", "style"],
    ["relation", "spatial", "relation"],
    ["relation", "action", "relation"],
    ["other", "id", "attribute"],
    ["Lighting", undefined, "lighting"],
    ["mood", undefined, "mood"],
    ["something else", undefined, "entity"],
  ];
  for (const [broad, detail, kind] of cases) {
    assert.equal(checkKindOf(broad, detail), kind, `${broad}/${detail}`);
  }
});

Deno.test("checksFromInclude() asks GenEval's objects, counts, colours and positions", () => {
  assert.deepEqual(checksFromInclude([{ class: "bench", count: 1 }]), [
    { question: "Is there a bench?", kind: "entity" },
  ]);
  assert.deepEqual(checksFromInclude([{ class: "clock", count: 2 }]), [
    { question: "Are there exactly two clocks?", kind: "count" },
  ]);
  assert.deepEqual(
    checksFromInclude([{ class: "wine glass", count: 1, color: "purple" }, {
      class: "apple",
      count: 1,
      color: "black",
    }]),
    [
      { question: "Is there a wine glass?", kind: "entity" },
      { question: "Is the wine glass purple?", kind: "attribute" },
      { question: "Is there an apple?", kind: "entity" },
      { question: "Is the apple black?", kind: "attribute" },
    ],
  );
  assert.deepEqual(
    checksFromInclude([
      { class: "teddy bear", count: 1 },
      { class: "dog", count: 1, position: ["right of", 0] },
    ]).map((c) => c.question),
    ["Is there a teddy bear?", "Is there a dog?", "Is the dog to the right of the teddy bear?"],
  );
  assert.deepEqual(
    ["person", "sandwich", "knife", "hair drier", "bus", "mouse"].map((name) =>
      checksFromInclude([{ class: name, count: 4 }])[0]!.question
    ),
    [
      "Are there exactly four people?",
      "Are there exactly four sandwiches?",
      "Are there exactly four knives?",
      "Are there exactly four hair driers?",
      "Are there exactly four buses?",
      "Are there exactly four mice?",
    ],
  );
});

Deno.test("isInclude() takes only a list of objects that each name a class", () => {
  assert.ok(isInclude([{ class: "cow", count: 1 }]));
  for (const value of [[], ["cow"], [{ count: 1 }], [{ class: "" }], "cow", null, {}]) {
    assert.ok(!isInclude(value), JSON.stringify(value));
  }
});
