// Command wif is a self-hosted implementation of workload identity federation,
// wire-compatible with Microsoft Entra Workload ID. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/wif-project/wif/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, cli.StdStreams(), os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wif:", err)
		os.Exit(1)
	}
}
