// Package files owns the agent's file tools: read_file, write_file, patch
// and search_files. Every path goes through one Jail, which keeps the tools
// inside the workspace (no "..", no absolute paths elsewhere, no symlink
// that leads out, checked on the real path after resolving symlinks) and
// away from credential files even inside it.
//
// The credential policy, chosen to err on the side of refusing:
//   - any path component .env or .env.* is refused, except templates ending
//     in .example, .sample, .template or .dist, which by convention hold
//     placeholders (a Python virtualenv named .env is refused too);
//   - .envrc, .ssh, .aws, .gnupg, .netrc, _netrc, .git-credentials, .npmrc,
//     .pypirc, .pgpass, .docker/config.json and .kube/config anywhere;
//   - private-key files by name: id_rsa*, id_dsa*, id_ecdsa*, id_ed25519*
//     (public halves included) and *.key, *.p12, *.pfx, *.jks, *.keystore;
//   - *.pem and *.crt are allowed by name, as they are mostly certificates,
//     but any file holding a "-----BEGIN … PRIVATE KEY-----" block is refused
//     by read_file and patch and skipped by search_files;
//   - under the user's home: .ssh, .aws, .gnupg, .kube, .docker, .azure and
//     .config/gcloud, even when the workspace is the home itself.
//
// search_files does not follow symlinks and skips .git, .hg, .svn and
// node_modules.
//
// It may import the root package, tooling and the standard library.
package files
