// Package audit owns remediator's audit log: the record schema, the append-only JSON
// lines files in one directory with a SHA-256 chain from each line to the one before,
// the group-committed fsyncs that make an append durable before it returns, rotation by
// size, recovery of a line torn by a crash, redaction of secrets in requests and
// results, and the verification and reading of the files afterwards.
//
// It records what it is given and decides nothing: what a decision was, and when it must
// be recorded, belong to the callers (handler for receipts and rejections, remediate for
// steps and runs). It imports none of them, never writes outside its directory, and
// never changes a line once it is written. The only bytes it ever removes are those of a
// line torn by a crash, and only after copying them to a file of their own; the record
// that follows says where they went.
package audit
