// jstat ships no type declarations; statistics.ts types the few functions it uses.
declare module 'jstat' {
  const jstat: unknown;
  export default jstat;
}
