// Image references as users type them: "name[:tag]" (tag defaults to latest), where name
// may carry a registry host with a port ("localhost:5000/app"), or an image ID: full,
// "sha256:"-prefixed, or a unique prefix of 3+ hex digits (as docker allows).

export interface NamedRef {
  repository: string;
  tag: string;
}

const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const HOST = '(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9-]+)*(?::[0-9]+)?/)?';
const REPOSITORY = new RegExp(`^${HOST}${COMPONENT}(?:/${COMPONENT})*$`);
const TAG = /^[\w][\w.-]{0,127}$/;

/**
 * Docker Hub names are kept in docker's familiar form, as `docker images` shows them:
 * "docker.io/library/nginx" is "nginx", "docker.io/skopeo/copy" is "skopeo/copy".
 */
function familiar(repository: string): string {
  const m = /^(?:docker\.io|index\.docker\.io)\/(.+)$/.exec(repository);
  if (!m) return repository;
  return m[1]!.startsWith('library/') && m[1]!.split('/').length === 2 ? m[1]!.slice('library/'.length) : m[1]!;
}

/** Parses "repo[:tag]"; throws with the offending text when it is not a valid reference. */
export function parseReference(text: string): NamedRef {
  const slash = text.lastIndexOf('/');
  const colon = text.lastIndexOf(':');
  const hasTag = colon > slash;
  const repository = hasTag ? text.slice(0, colon) : text;
  const tag = hasTag ? text.slice(colon + 1) : 'latest';
  if (!REPOSITORY.test(repository) || repository.length > 255) throw new Error(`invalid reference format: repository name '${repository}' must be lowercase [a-z0-9._-/], optionally after a registry host`);
  if (!TAG.test(tag)) throw new Error(`invalid reference format: tag '${tag}'`);
  return { repository: familiar(repository), tag };
}

export function formatReference(r: NamedRef): string {
  return `${r.repository}:${r.tag}`;
}

/** Hex digits of an ID-like string ("sha256:" optional), or undefined if it cannot be an ID prefix. */
export function idPrefixOf(text: string): string | undefined {
  const hex = text.startsWith('sha256:') ? text.slice(7) : text;
  return /^[0-9a-f]{3,64}$/.test(hex) ? hex : undefined;
}

/** The 12-digit form shown in tables. */
export function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}
