// A node:test reporter that closes the run with one line, as tests/unit/run.sh does:
//   e2e: N passed, N failed, N skipped
// and names each skipped test with its reason. A skip means this machine lacks something a
// test needs (root, a pty, ...); CI has all of it, so there (CI=true) a skip fails the run.
// Used beside the usual reporter: node --test --test-reporter=spec --test-reporter=./totals.js
export default async function* totals(source) {
  let passed = 0;
  let failed = 0;
  const skipped = [];
  for await (const { type, data } of source) {
    if (type !== 'test:pass' && type !== 'test:fail') continue;
    if (data.details?.type === 'suite') {
      if (type === 'test:fail' && data.details?.error?.failureType !== 'subtestsFailed') failed++;
      continue;
    }
    if (type === 'test:fail') failed++;
    else if (data.skip !== undefined || data.todo !== undefined) skipped.push(`${data.name} (${data.skip ?? data.todo})`);
    else passed++;
  }
  yield `e2e: ${passed} passed, ${failed} failed, ${skipped.length} skipped\n`;
  for (const s of skipped) yield `e2e: skipped: ${s}\n`;
  if (skipped.length && process.env.CI === 'true') {
    yield 'e2e: CI=true and a test was skipped: CI runs as root with a pty, so none may be\n';
    process.exitCode = 1;
  }
}
