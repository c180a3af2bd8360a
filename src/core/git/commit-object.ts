// A commit object's bytes, with author and committer taken as git takes them.

export interface Identity {
  name: string;
  email: string;
  committerName: string;
  committerEmail: string;
}

const FALLBACK = { name: 'ratchet', email: 'ratchet@localhost' };

/** From `git config -z --get-regexp ^user\.(name|email)$` output and the GIT_AUTHOR_* / GIT_COMMITTER_* variables. */
export function identityFrom(configOut: string, env: NodeJS.ProcessEnv): Identity {
  const config = new Map(configOut.split('\0').filter(Boolean).map((kv) => [kv.split('\n')[0]!, kv.split('\n').slice(1).join('\n')]));
  return {
    name: env.GIT_AUTHOR_NAME || config.get('user.name') || FALLBACK.name,
    email: env.GIT_AUTHOR_EMAIL || config.get('user.email') || FALLBACK.email,
    committerName: env.GIT_COMMITTER_NAME || config.get('user.name') || FALLBACK.name,
    committerEmail: env.GIT_COMMITTER_EMAIL || config.get('user.email') || FALLBACK.email,
  };
}

/** The commit's content as git writes it, dated `now` in this machine's time zone. */
export function encodeCommit(tree: string, parents: string[], message: string, id: Identity, now: Date): Buffer {
  const offset = -now.getTimezoneOffset();
  const tz = `${offset >= 0 ? '+' : '-'}${String(Math.floor(Math.abs(offset) / 60)).padStart(2, '0')}${String(Math.abs(offset) % 60).padStart(2, '0')}`;
  const when = `${Math.floor(now.getTime() / 1000)} ${tz}`;
  const clean = (s: string) => s.replace(/[<>\n]/g, '');
  const lines = [
    `tree ${tree}`,
    ...parents.map((p) => `parent ${p}`),
    `author ${clean(id.name)} <${clean(id.email)}> ${when}`,
    `committer ${clean(id.committerName)} <${clean(id.committerEmail)}> ${when}`,
    '',
    message.endsWith('\n') ? message : `${message}\n`,
  ];
  return Buffer.from(lines.join('\n'), 'utf8');
}
