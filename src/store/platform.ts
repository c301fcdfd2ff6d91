// Platforms as OCI image indexes name them ("linux/arm64/v8"), and the one this host runs.

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const NODE_TO_OCI: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64', mips: 'mips', mipsel: 'mipsle' };

export function hostPlatform(): Platform {
  const architecture = NODE_TO_OCI[process.arch] ?? process.arch;
  const p: Platform = { os: process.platform, architecture };
  if (architecture === 'arm64') p.variant = 'v8';
  if (architecture === 'arm') p.variant = `v${(process.config.variables as Record<string, unknown>).arm_version ?? '7'}`;
  return p;
}

export function parsePlatform(text: string): Platform {
  const [os, architecture, variant] = text.split('/');
  if (!os || !architecture) throw new Error(`invalid platform '${text}' (expected os/arch[/variant], e.g. linux/amd64)`);
  return variant ? { os, architecture, variant } : { os, architecture };
}

export function formatPlatform(p: Partial<Platform>): string {
  return [p.os ?? '?', p.architecture ?? '?', p.variant].filter(Boolean).join('/');
}

/** Does a manifest's platform satisfy the wanted one? A missing variant matches any (arm64 is v8 anyway). */
export function platformMatches(have: Partial<Platform>, want: Platform): boolean {
  if (have.os !== want.os || have.architecture !== want.architecture) return false;
  return !want.variant || !have.variant || have.variant === want.variant;
}
