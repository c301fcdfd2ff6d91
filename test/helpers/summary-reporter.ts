// Prints one plain closing line, "tests: N passed, N failed, N skipped", after vitest's own
// summary, so that tools reading only the last lines of a run see the counts.
import type { Reporter, RunnerTestFile } from 'vitest/node';

type Task = RunnerTestFile['tasks'][number];

export default class SummaryReporter implements Reporter {
  onFinished(files: RunnerTestFile[] = []): void {
    const n = { pass: 0, fail: 0, skip: 0 };
    const visit = (t: Task): void => {
      if (t.type === 'suite') {
        for (const c of t.tasks) visit(c);
        return;
      }
      const s = t.result?.state;
      if (s === 'pass') n.pass++;
      else if (s === 'fail') n.fail++;
      else n.skip++;
    };
    let fileFailures = 0;
    for (const f of files) {
      if (f.result?.state === 'fail' && f.tasks.length === 0) fileFailures++;
      for (const t of f.tasks) visit(t);
    }
    process.stdout.write(`\ntests: ${n.pass} passed, ${n.fail + fileFailures} failed, ${n.skip} skipped\n`);
  }
}
