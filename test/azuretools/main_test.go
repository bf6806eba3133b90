// Package azuretools tests wif's Resource Manager surface with the Go
// clients real tools are built on: the Azure SDK for Go's armmsi and
// armresources (what azurerm's older code, Pulumi's azure-native and Go
// programs use) and hashicorp/go-azure-sdk (what Terraform's azurerm and
// azuread providers use), unmodified, against a real token service on
// loopback TLS.
package azuretools

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/tlsutil"
)

// testCA signs every test server's certificate. go-azure-sdk's metadata
// and token clients build their own transports on the system roots, as
// Terraform runs them: they trust wif's CA through SSL_CERT_FILE, which
// TestMain sets before anything in the process reads the roots — the
// README's recipe for Terraform.
var testCA *tlsutil.CA

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ca, err := tlsutil.NewCA("wif azuretools test CA", 24*time.Hour)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "wif-azuretools-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(file, ca.CertPEM, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	os.Setenv("SSL_CERT_FILE", file)
	testCA = ca
	return m.Run()
}
