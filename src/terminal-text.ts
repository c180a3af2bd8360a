// Text for a person's terminal: control characters from code the agent wrote (escape sequences that retitle, recolour or
// rewrite the screen) are shown as visible placeholders instead of being obeyed. Tabs and newlines stay.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

export function forTerminal(text: string): string {
  return text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
