// Package files owns the agent's file tools: read_file, write_file, patch
// and search_files. Every path goes through one Jail, which keeps the tools
// inside the workspace (no "..", no absolute paths elsewhere, no symlink
// that leads out, checked on the real path after resolving symlinks) and
// away from credential files even inside it. The same deny check covers
// every path any tool touches, search included.
//
// Files are opened under the workspace's os.Root, so a symlink swapped in
// after the check cannot lead out; the deny check is made again on the path
// the opened descriptor has. Only regular files are read or replaced: a
// FIFO, device or socket is refused (opened with O_NONBLOCK, so a FIFO
// cannot block the open), and so is a file with more than one hard link,
// which may be the other name of a file outside the workspace, unless
// Options.AllowHardlinks.
//
// The credential policy, chosen to err on the side of refusing:
//   - any path component starting with .env (.env, .env.local, .envrc) or
//     ending in .env (prod.env) is refused, except templates ending in
//     .example, .sample, .template or .dist, which by convention hold
//     placeholders (a Python virtualenv named .env is refused too);
//   - .ssh, .aws, .azure, .kube, .docker, .gnupg, .config/gcloud, .netrc,
//     _netrc, .git-credentials, .npmrc, .pypirc, .pgpass, .my.cnf,
//     .htpasswd, .vault-token, .s3cfg, .boto, credentials (AWS),
//     credentials.json, keyrings, .password-store and kwalletd anywhere;
//   - private-key files by name: id_rsa*, id_dsa*, id_ecdsa*, id_ed25519*
//     (public halves included), *.key, *.p12, *.pfx, *.jks, *.keystore,
//     and *.keyring and *.kdbx password stores;
//   - *.pem and *.crt are allowed by name, as they are mostly certificates,
//     but any file holding a "-----BEGIN … PRIVATE KEY-----" block is refused
//     by read_file and patch and skipped by search_files;
//   - the same names relative to the user's home, so a workspace inside
//     ~/.kube is no way in either;
//   - the Private directories (HERMES_HOME: its SOUL.md and memories shape
//     every future prompt), wherever they lie.
//
// search_files does not follow symlinks and skips .git, .hg, .svn and
// node_modules.
//
// It may import the root package, tooling, the standard library and
// doublestar (globs).
package files
