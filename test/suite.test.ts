/**
 * Rules about the test suite itself.
 *
 * Every assertion carries a message that says what it checks. Besides telling the reader what
 * failed, this matters for running at all: when an assertion with no message fails, Node builds
 * one from the call's source text, and in a file run through tsx that lookup on the transformed
 * source can spin at full CPU (a test file ran past 300 s and printed nothing).
 *
 * The checker parses each file with the TypeScript compiler and counts the arguments of every call
 * of `assert`, `assert.<method>` (and methods imported by name from `node:assert`):
 * - `assert(v, msg)`, `assert.ok(v, msg)`: 2 arguments;
 * - `equal`, `notEqual`, `deepEqual`, `strictEqual`, … and `match`, `doesNotMatch`: 3;
 * - `throws`, `rejects`, `doesNotThrow`, `doesNotReject`: the error matcher, then the message
 *   (with 2 arguments the second must be a string or a template, else it is a matcher);
 * - `fail(msg)`: 1.
 * A literal message must not be empty. `ifError` takes no message, so it is refused, as is a method
 * the checker does not know, a spread argument (which it cannot count) and an assert method passed
 * around as a value.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';

/** The files checked: every .ts file under test/ (and the e2e tests beside it). */
const CHECKED: readonly string[] | 'every test file' = 'every test file';

const ROOT = join(import.meta.dirname, '..');

/** Every .ts file under test/, as a path from the project's root with `/` separators. */
function everyTestFile(): string[] {
  return ['test', 'e2e']
    .flatMap((dir) =>
      readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts') && !f.split(sep).includes('node_modules'))
        .map((f) => relative(ROOT, join(ROOT, dir, f)).split(sep).join('/')),
    )
    .sort();
}

/** The files {@link CHECKED} names. */
function filesToCheck(checked: readonly string[] | 'every test file'): readonly string[] {
  return checked === 'every test file' ? everyTestFile() : checked;
}

/** An assertion that breaks the rule, where it is and why. */
export interface Finding {
  line: number;
  column: number;
  call: string;
  why: string;
}

const ASSERT_MODULES = new Set(['assert', 'assert/strict', 'node:assert', 'node:assert/strict']);
/** Methods whose message is their third argument. */
const THIRD = new Set([
  'equal', 'notEqual', 'strictEqual', 'notStrictEqual', 'deepEqual', 'notDeepEqual', 'deepStrictEqual',
  'notDeepStrictEqual', 'partialDeepStrictEqual', 'match', 'doesNotMatch',
]);
/** Methods whose message follows their error matcher. */
const AFTER_MATCHER = new Set(['throws', 'rejects', 'doesNotThrow', 'doesNotReject']);
/** Every method the checker knows how to count. */
const KNOWN = new Set([...THIRD, ...AFTER_MATCHER, 'ok', 'fail', 'ifError']);

/** Whether `node` is a string literal or a template, the only arguments that cannot be an error matcher. */
function isStringy(node: ts.Expression): boolean {
  return ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateExpression(node);
}

/** Finds the assertions of one file's text that carry no message. */
export function findMissingMessages(fileName: string, text: string): Finding[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  /** Local names bound to the assert module itself (default, namespace, `strict`). */
  const modules = new Set<string>();
  /** Local names bound to one of its methods (`import { equal as eq }`), with the method. */
  const methods = new Map<string, string>();
  for (const statement of source.statements) {
    if (!ts.isImportDeclaration(statement) || !ts.isStringLiteral(statement.moduleSpecifier)) continue;
    if (!ASSERT_MODULES.has(statement.moduleSpecifier.text)) continue;
    const clause = statement.importClause;
    if (clause === undefined) continue;
    if (clause.name !== undefined) modules.add(clause.name.text);
    const bindings = clause.namedBindings;
    if (bindings === undefined) continue;
    if (ts.isNamespaceImport(bindings)) {
      modules.add(bindings.name.text);
      continue;
    }
    for (const element of bindings.elements) {
      const imported = (element.propertyName ?? element.name).text;
      if (imported === 'strict' || imported === 'default') modules.add(element.name.text);
      else methods.set(element.name.text, imported);
    }
  }

  /** The assert module an expression names (`assert`, `assert.strict`), or nothing. */
  const isModule = (e: ts.Expression): boolean =>
    (ts.isIdentifier(e) && modules.has(e.text)) ||
    (ts.isPropertyAccessExpression(e) && e.name.text === 'strict' && isModule(e.expression));
  /** The method an expression names (`assert.equal`, `equal`; `'ok'` for `assert`), or nothing. */
  const methodOf = (e: ts.Expression): string | undefined => {
    if (isModule(e)) return 'ok';
    if (ts.isIdentifier(e)) return methods.get(e.text);
    if (ts.isPropertyAccessExpression(e) && isModule(e.expression)) return e.name.text;
    return undefined;
  };

  const findings: Finding[] = [];
  const report = (node: ts.Node, why: string): void => {
    const { line, character } = source.getLineAndCharacterOfPosition(node.getStart(source));
    const call = node.getText(source).replace(/\s+/g, ' ');
    findings.push({ line: line + 1, column: character + 1, call: call.length > 80 ? `${call.slice(0, 77)}...` : call, why });
  };

  const checkCall = (call: ts.CallExpression, method: string): void => {
    const args = call.arguments;
    if (args.some((a) => ts.isSpreadElement(a))) return report(call, 'a spread argument: its message cannot be counted');
    if (!KNOWN.has(method)) return report(call, `assert.${method} is not a method the checker knows`);
    if (method === 'ifError') return report(call, 'ifError takes no message: use assert.equal(error, undefined, message)');
    let message: ts.Expression | undefined;
    if (method === 'ok') message = args[1];
    else if (method === 'fail') message = args[0];
    else if (THIRD.has(method)) message = args[2];
    else if (args.length >= 3) message = args[2];
    else if (args.length === 2 && isStringy(args[1] as ts.Expression)) message = args[1];
    if (message === undefined) return report(call, 'no message');
    if ((ts.isStringLiteral(message) || ts.isNoSubstitutionTemplateLiteral(message)) && message.text.trim() === '') {
      report(call, 'an empty message');
    }
  };

  /** Whether `node` is an identifier or property access used as a value (not a name being declared or accessed). */
  const isValueUse = (node: ts.Node): node is ts.Expression => {
    if (!ts.isIdentifier(node) && !ts.isPropertyAccessExpression(node)) return false;
    const parent = node.parent;
    if (ts.isPropertyAccessExpression(parent)) return false; // `assert` in `assert.x`, or `x` in `o.x`: judged at the parent
    if (ts.isPropertyAssignment(parent) && parent.name === node) return false;
    if ((ts.isVariableDeclaration(parent) || ts.isParameter(parent) || ts.isFunctionDeclaration(parent) || ts.isBindingElement(parent)) && parent.name === node) return false;
    return true;
  };

  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) return;
    if (ts.isCallExpression(node)) {
      const method = methodOf(node.expression);
      if (method !== undefined) {
        checkCall(node, method);
        node.arguments.forEach(visit);
        return;
      }
    }
    if (isValueUse(node)) {
      const method = methodOf(node);
      if (method !== undefined && KNOWN.has(method)) return report(node, 'an assert method used as a value: its calls cannot be checked');
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return findings;
}

describe('the assertion message checker', () => {
  const check = (body: string): string[] =>
    findMissingMessages('x.ts', `import assert from 'node:assert/strict';\n${body}`).map((f) => f.why);
  const flagged: [string, string, string][] = [
    ['a bare assert with one argument', 'assert(x);', 'no message'],
    ['assert.ok with one argument', 'assert.ok(x);', 'no message'],
    ['equal with two arguments', 'assert.equal(a, b);', 'no message'],
    ['deepStrictEqual with two arguments', 'assert.deepStrictEqual(a, b);', 'no message'],
    ['match with two arguments', 'assert.match(s, /x/);', 'no message'],
    ['throws with a matcher only', 'assert.throws(() => f(), /x/);', 'no message'],
    ['throws with a class matcher only', 'assert.throws(() => f(), TypeError);', 'no message'],
    ['rejects with a matcher only', 'await assert.rejects(p, (e) => true);', 'no message'],
    ['rejects with no matcher', 'await assert.rejects(p);', 'no message'],
    ['fail with no argument', 'assert.fail();', 'no message'],
    ['an empty message', "assert.ok(x, '');", 'an empty message'],
    ['a blank template message', 'assert.equal(a, b, ` `);', 'an empty message'],
    ['ifError', 'assert.ifError(e);', 'ifError takes no message: use assert.equal(error, undefined, message)'],
    ['an unknown method', 'assert.someday(x, y, z);', 'assert.someday is not a method the checker knows'],
    ['a spread argument', "assert.equal(...pair, 'm');", 'a spread argument: its message cannot be counted'],
    ['a method used as a value', 'xs.forEach(assert.ok);', 'an assert method used as a value: its calls cannot be checked'],
    ['an assertion nested in an argument', "assert.ok(f(() => assert.equal(a, b)), 'outer');", 'no message'],
    ['an assertion in a callback', "it('x', () => { assert.ok(y); });", 'no message'],
    ['assert.strict', 'assert.strict.equal(a, b);', 'no message'],
  ];
  for (const [name, body, why] of flagged) {
    it(`flags ${name}`, () => assert.deepEqual(check(body), [why], `${name} is flagged once, for the right reason`));
  }
  const accepted: [string, string][] = [
    ['a bare assert with a message', "assert(x, 'x is set');"],
    ['assert.ok with a computed message', 'assert.ok(x, `waited ${ms} ms`);'],
    ['equal with a message', "assert.equal(a, b, 'a is b');"],
    ['equal with a variable message', 'assert.equal(a, b, name);'],
    ['match with a message', "assert.match(s, /x/, 's names x');"],
    ['throws with a matcher and a message', "assert.throws(() => f(), /x/, 'f refuses');"],
    ['doesNotThrow with a message only', "assert.doesNotThrow(() => f(), 'f accepts');"],
    ['rejects with a matcher and a message', "await assert.rejects(p, TypeError, 'p refuses');"],
    ['fail with a message', "assert.fail('never here');"],
    ['an AssertionError check', 'e instanceof assert.AssertionError;'],
    ['a call of something else named ok', 'res.ok(x); other.equal(a, b);'],
  ];
  for (const [name, body] of accepted) {
    it(`accepts ${name}`, () => assert.deepEqual(check(body), [], `${name} is not flagged`));
  }
  it('follows named imports, renamed ones and the namespace form', () => {
    const text = [
      "import { equal as eq, strict as sa } from 'node:assert';",
      "import * as ns from 'assert';",
      "eq(a, b); sa.ok(x); ns.match(s, /x/); ns.throws(f, 'only a message');",
    ].join('\n');
    assert.deepEqual(
      findMissingMessages('x.ts', text).map((f) => f.call),
      ['eq(a, b)', 'sa.ok(x)', 'ns.match(s, /x/)'],
      'every imported form of assert is checked, and a string second argument of throws counts as its message',
    );
  });
  it('ignores a file that does not import assert', () => {
    assert.deepEqual(findMissingMessages('x.ts', 'assert(x); equal(a, b);'), [], 'names not bound to node:assert are not assertions');
  });
  it('says where the assertion is', () => {
    assert.deepEqual(
      findMissingMessages('x.ts', "import assert from 'node:assert';\n\n  assert.equal(a,\n    b);"),
      [{ line: 3, column: 3, call: 'assert.equal(a, b)', why: 'no message' }],
      'a finding names the line and column of the call, and the call on one line',
    );
  });
});

describe('every assertion carries a message', () => {
  const files = filesToCheck(CHECKED);
  it('checks files that exist', (t) => {
    const missing = files.filter((f) => !existsSync(join(ROOT, f)));
    assert.deepEqual(missing, [], 'every file on the list exists (a renamed file must be renamed on the list too)');
    const unchecked = everyTestFile().filter((f) => !files.includes(f));
    if (unchecked.length > 0) t.diagnostic(`not checked yet: ${unchecked.join(', ')}`);
  });
  for (const file of files) {
    it(file, () => {
      const path = join(ROOT, file);
      if (!existsSync(path)) return;
      const findings = findMissingMessages(file, readFileSync(path, 'utf8'));
      const lines = findings.map((f) => `  ${file}:${f.line}:${f.column} ${f.why}: ${f.call}`);
      assert.equal(findings.length, 0, `${file} has ${findings.length} assertion(s) without a message:\n${lines.join('\n')}`);
    });
  }
});
