/**
 * The sections of bench/RESULTS.md, which several scripts write: run.ts (the top, "Redis",
 * "Against the floor under wrk") and scale.ts ("Scale"), around sections written by hand. A
 * section is a `## ` heading line and what follows it up to the next one.
 */

/** Takes the section under the heading `title` out of `text`: the text without it, and the section (`''` when there is none). */
export function cutSection(text: string, title: string): [string, string] {
  // Searched with a newline before the text, so that a heading on the first line is found too.
  const at = `\n${text}`.indexOf(`\n${title}\n`);
  if (at === -1) return [text, ''];
  const next = text.slice(at + 1).search(/^## /m);
  const end = next === -1 ? text.length : at + 1 + next;
  return [text.slice(0, at) + text.slice(end), text.slice(at, end)];
}

/**
 * `text` with `section` (which starts with the heading `title`) in place of the section of that
 * title; a new one goes before the first heading `before` matches, else at the end. Every other
 * section stays as it is.
 */
export function putSection(text: string, title: string, section: string, before?: RegExp): string {
  const body = `${section.trimEnd()}\n\n`;
  const at = `\n${text}`.indexOf(`\n${title}\n`);
  let out: string;
  if (at !== -1) {
    const [rest] = cutSection(text, title);
    out = `${rest.slice(0, at)}${body}${rest.slice(at)}`;
  } else {
    const where = before === undefined ? -1 : text.search(before);
    out = where === -1 ? `${text.trimEnd()}\n\n${body}` : `${text.slice(0, where)}${body}${text.slice(where)}`;
  }
  return `${out.trimEnd()}\n`;
}
