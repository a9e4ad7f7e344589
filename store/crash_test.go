package store

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"
)

// crashChild is the process TestSIGKILL kills: it writes (adds and some
// removals) from several goroutines with synchronous=FULL and prints every
// acknowledged write, then loops until killed.
func crashChild() int {
	path, round := os.Getenv("ACMEHUB_STORE_PATH"), os.Getenv("ACMEHUB_STORE_ROUND")
	db, err := Open(context.Background(), Config{Path: path, Synchronous: "FULL"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var out sync.Mutex
	report := func(line string) {
		out.Lock()
		defer out.Unlock()
		// One write call per line: a line either arrives whole or not at all
		// from the parent's point of view (it drops an unterminated tail).
		_, _ = os.Stdout.WriteString(line + "\n")
	}
	// A safety net: the parent kills it long before this.
	time.AfterFunc(30*time.Second, func() { os.Exit(4) })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				name := fmt.Sprintf("r%s-g%d-%d.example.org.", round, g, i/16)
				value := fmt.Sprintf("v%d", i)
				if _, err := db.AddValue(context.Background(), AddRequest{Name: name, Value: value, TTL: 60, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				report("add " + name + " " + value)
				if i%5 == 4 { // remove the value added two steps ago
					old := fmt.Sprintf("v%d", i-2)
					oldName := fmt.Sprintf("r%s-g%d-%d.example.org.", round, g, (i-2)/16)
					// Announced first: killed before the acknowledgement, the
					// removal may or may not have committed.
					report("try-del " + oldName + " " + old)
					if _, _, err := db.RemoveValue(context.Background(), oldName, old); err != nil {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(3)
					}
					report("del " + oldName + " " + old)
				}
			}
		})
	}
	wg.Wait()
	return 0
}
