package main

import "github.com/acmehub/acmehub/internal/upstream/legoworker"

// legoWorkerArg is the hidden subcommand the hub's lego worker pool starts
// (legoworker.PoolConfig's default Command): a worker process serving one
// credential set over stdin/stdout. It is not in --help, and it skips
// run's settings and signal handling: the worker's environment holds only
// the credential, and SIGTERM from the pool should end it at once.
const legoWorkerArg = "lego-worker"

// legoWorker reports whether args (os.Args) start a worker, and if so
// runs it and returns its exit code.
func legoWorker(args []string) (int, bool) {
	if len(args) != 2 || args[1] != legoWorkerArg {
		return 0, false
	}
	return legoworker.Main(), true
}
