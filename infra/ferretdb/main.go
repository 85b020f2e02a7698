// Command ferretdb-standin runs FerretDB (MongoDB wire protocol on SQLite) for Stompede's tests.
//
// Why a program of our own: `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` panics at start,
// because the module zip lacks build/version/version.txt and FerretDB checks it when it is the main module.
// Embedding the ferretdb package from our own main module skips that check (FerretDB's supported embedded path).
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	addr := flag.String("listen-addr", "127.0.0.1:27018", "TCP address to listen on")
	dir := flag.String("dir", "", "directory holding the SQLite databases (created if missing)")
	flag.Parse()

	if *dir == "" {
		log.Fatal("-dir is required")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		log.Fatal(err)
	}

	// New() already listens; Run() accepts until ctx is done. The SQLite URL must name an existing
	// directory and end in "/".
	//
	// _txlock=immediate: every transaction takes the write lock when it begins. With SQLite's default (deferred)
	// a transaction that reads and then writes cannot wait for a concurrent writer: it fails at once with
	// SQLITE_BUSY ("database is locked"), busy_timeout notwithstanding, which three nodes appending history at
	// once hit every few seconds. synchronous(normal) is what WAL mode recommends: an fsync per checkpoint, not per
	// commit (a test stand-in need not survive a power cut).
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/?_txlock=immediate&_pragma=synchronous(normal)",
	})
	if err != nil {
		log.Fatal(err)
	}

	// SIGTERM (infra/services.sh stop) and Ctrl-C end Run cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log.Printf("ferretdb-standin listening on %s, data in %s", *addr, *dir)
	f.Run(ctx)
	log.Printf("ferretdb-standin stopped")
}
