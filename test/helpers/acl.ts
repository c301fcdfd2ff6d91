// POSIX ACLs as the kernel stores them in system.posix_acl_access/_default (what setfacl
// writes), so tests need no acl package: version 2, then (tag, perm, id) sorted by tag.

export type AclEntry = [tag: 'u' | 'user' | 'g' | 'mask' | 'o', perm: number, id?: number];

const TAGS = { u: 0x01, user: 0x02, g: 0x04, mask: 0x10, o: 0x20 };

export function aclXattr(entries: AclEntry[]): Buffer {
  const b = Buffer.alloc(4 + 8 * entries.length);
  b.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(TAGS[tag], 4 + 8 * i);
    b.writeUInt16LE(perm, 6 + 8 * i);
    b.writeUInt32LE(id ?? 0xffffffff, 8 + 8 * i);
  });
  return b;
}
