// Glob patterns with Python's fnmatch.fnmatchcase semantics, so a pattern selects in the
// browser exactly what `bb.layers(pattern)` selects in the kernel (`*` also crosses dots).

export function isGlob(text: string): boolean {
  return /[*?[]/.test(text);
}

export function globToRegExp(pattern: string): RegExp {
  let out = "";
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i++];
    if (c === "*") {
      out += ".*";
    } else if (c === "?") {
      out += ".";
    } else if (c === "[") {
      const end = pattern.indexOf("]", i + (pattern[i] === "!" ? 2 : 1));
      if (end < 0) {
        out += "\\[";
        continue;
      }
      let body = pattern.slice(i, end);
      i = end + 1;
      body = body.replace(/\\/g, "\\\\");
      out += body.startsWith("!") ? `[^${body.slice(1)}]` : `[${body}]`;
    } else {
      out += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
    }
  }
  return new RegExp(`^${out}$`, "s");
}

export function globMatch(pattern: string, text: string): boolean {
  return globToRegExp(pattern).test(text);
}
