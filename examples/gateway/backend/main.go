// Command backend is the API behind the gateway example (run.sh): it
// listens on a free loopback port, writes its URL to -ready-file, and
// answers every request with the caller the gateway vouched for — the
// X-Wif-* headers — as JSON.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	ready := flag.String("ready-file", "", "write the backend's URL here once listening")
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	if *ready != "" {
		if err := os.WriteFile(*ready, []byte("http://"+ln.Addr().String()+"/"), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"path": r.URL.Path, "clientId": r.Header.Get("X-Wif-Client-Id"), "tenantId": r.Header.Get("X-Wif-Tenant-Id"),
			"roles": r.Header.Get("X-Wif-Roles"),
		})
	})}
	log.Fatal(srv.Serve(ln))
}
