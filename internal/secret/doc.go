// Package secret generates API tokens, extracts them from HTTP requests,
// hashes token secrets with a keyed hash, and seals stored credentials.
//
// All key material comes from one key file (see LoadKeyFile) kept apart
// from the database: a stolen database alone yields neither token secrets
// (only keyed hashes) nor upstream credentials (only sealed blobs). Each
// purpose (hashing, key check, sealing) uses its own HKDF-derived subkey,
// so one key never serves two purposes.
//
// Nothing in this package logs, and no error it returns contains a secret,
// a token or key material.
package secret
