/**
 * Where a large batch's CPU goes: runs the CLI (the `run` task's flags, or `--flags` given)
 * against the stand-ins with the full bench's quotas, and prints the CLI's CPU time per prompt,
 * its throughput against the bound, and with `--cpu-prof DIR` a V8 profile to open in Chrome's
 * DevTools (`--top` prints its heaviest functions by self time).
 *
 *     deno run -A tests/bench/profile.ts [--prompts 1000] [--cpu-prof DIR] [--top 25]
 *       [--v8-flags=...] [--concurrency 8]
 *
 * @module
 */
import { startFalStandIn } from "../fal_standin.ts";
import { startGeminiStandIn } from "../gemini_standin.ts";
import { benchPrompts } from "./child.ts";
import { MAIN, RUN_ENV, RUN_PERMISSIONS } from "../cli.ts";

const args = Deno.args;
const opt = (name: string) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const prompts = Number(opt("--prompts") ?? 1000);
const profDir = opt("--cpu-prof");
const top = Number(opt("--top") ?? 0);
const concurrency = opt("--concurrency");
const v8 = args.find((a) => a.startsWith("--v8-flags="));
const falC = 8, falMs = 300, geminiQuota = 480, windowMs = 6000;

const fal = await startFalStandIn({
  key: "k",
  latencyMs: falMs,
  jitterMs: 60,
  concurrency: falC,
  imageVariants: 16,
});
const gemini = await startGeminiStandIn({
  key: "g",
  latencyMs: 200,
  rpm: geminiQuota,
  quotaWindowMs: windowMs,
});
const dir = await Deno.makeTempDir({ prefix: "retake-profile-" });
await Deno.writeTextFile(
  `${dir}/batch.json`,
  JSON.stringify({ prompts: benchPrompts(prompts).map(({ extra: _e, ...rest }) => rest) }),
);
await Deno.writeTextFile(
  `${dir}/retake.config.json`,
  JSON.stringify({ size: "256x192", fal: { pollIntervalMs: 50 }, retry: { budget: 100_000 } }),
);
const permissions = RUN_PERMISSIONS.filter((a) => !(v8 && a.startsWith("--v8-flags")));
const cli = [
  "run",
  "--quiet",
  ...permissions,
  ...(v8 ? [v8] : []),
  ...(profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : []),
  MAIN,
  "--out",
  "out",
  "--name",
  "p",
  "--quiet",
  ...(concurrency ? ["--concurrency", concurrency] : []),
  "batch.json",
];
const started = performance.now();
const strace = opt("--strace");
const timed = ["/usr/bin/time", "-f", "%U %S %M", Deno.execPath(), ...cli];
const traceOnly = opt("--trace");
const perf = opt("--perf");
const wrapped = perf
  ? ["perf", "record", "-e", "cpu-clock", "-F", "499", "-o", perf, "--", ...timed]
  : strace
  ? ["strace", "-f", ...(traceOnly ? ["-e", `trace=${traceOnly}`] : ["-c"]), "-o", strace, ...timed]
  : timed;
const child = new Deno.Command(wrapped[0]!, {
  args: wrapped.slice(1),
  cwd: dir,
  clearEnv: true,
  env: {
    PATH: Deno.env.get("PATH") ?? "",
    HOME: Deno.env.get("HOME") ?? "/tmp",
    NO_COLOR: "1",
    ...RUN_ENV,
    FAL_KEY: "k",
    GEMINI_API_KEY: "g",
    FAL_BASE_URL: fal.url,
    GEMINI_BASE_URL: gemini.url,
    ...Object.fromEntries(
      args.flatMap((a, i) => args[i - 1] === "--env" ? [a.split("=", 2) as [string, string]] : []),
    ),
  },
  stdout: "null",
  stderr: "piped",
}).spawn();
const { stderr } = await child.output();
const wall = performance.now() - started;
await fal.close();
await gemini.close();
const text = new TextDecoder().decode(stderr).trim().split("\n");
const [user, sys, maxKb] = text.at(-1)!.split(" ").map(Number) as [number, number, number];
const run = JSON.parse(await Deno.readTextFile(`${dir}/out/p/run.json`));
const rate = run.totals.completed / (run.durationMs / 1000);
const falPerSecond = falC / (falMs / 1000);
const seconds = Math.max(2 * prompts / falPerSecond + 0.2, 4 * prompts / (geminiQuota / 6) + 0.3);
// deno-lint-ignore no-console
console.log(
  `${prompts} prompts in ${(run.durationMs / 1000).toFixed(1)} s (wall ${
    (wall / 1000).toFixed(1)
  } s): ${rate.toFixed(2)} prompts/s, ${(rate / (prompts / seconds)).toFixed(3)}× the bound; ` +
    `CLI CPU ${
      (1000 * (user + sys) / prompts).toFixed(1)
    } ms per prompt (user ${user} s, sys ${sys} s), peak RSS ${(maxKb / 1024).toFixed(0)} MB`,
);
if (profDir && top > 0) {
  for await (const entry of Deno.readDir(profDir)) {
    if (!entry.name.endsWith(".cpuprofile")) continue;
    printTop(JSON.parse(await Deno.readTextFile(`${profDir}/${entry.name}`)), top);
  }
}
await Deno.remove(dir, { recursive: true });

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

/** The heaviest functions of a V8 profile by self time, and by file. */
function printTop(profile: { nodes: ProfileNode[]; samples: number[] }, n: number): void {
  const total = profile.samples.length;
  const byFn = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.replace(/^.*\/(node_modules|\.deno|src|npm)\//, "$1/") || "(native)";
    const key = `${functionName || "(anonymous)"} ${file}:${lineNumber + 1}`;
    byFn.set(key, (byFn.get(key) ?? 0) + hits);
    const pkg = file.replace(/^(npm\/registry\.npmjs\.org\/[^/]+(?:\/[^/]+)?)\/.*$/, "$1")
      .replace(/^(src\/[^/]+)\/.*$/, "$1");
    byFile.set(pkg, (byFile.get(pkg) ?? 0) + hits);
  }
  const show = (map: Map<string, number>, title: string) => {
    // deno-lint-ignore no-console
    console.log(`\n${title} (${total} samples)`);
    for (const [key, hits] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n)) {
      // deno-lint-ignore no-console
      console.log(`${(100 * hits / total).toFixed(1).padStart(5)}%  ${key}`);
    }
  };
  show(byFn, "self time by function");
  show(byFile, "self time by package or folder");
}
