// Command consumer is seed 001's consumer: a program that calls a provider
// API as a managed identity, with no secret of its own. It uses the
// unmodified Azure SDK for Go — azidentity's DefaultAzureCredential, which
// picks up the workload identity environment (AZURE_AUTHORITY_HOST,
// AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE) that
// `wif dev` writes to .wif/env and that the Kubernetes webhook injects in a
// pod — and wifclient, an http.RoundTripper that attaches the access token to
// each request (and gets a fresh one on a 401, waits on a 429).
//
// The one line that differs from code written only for Entra is
// DisableInstanceDiscovery: true; see docs/use-from-your-code.md.
//
//	wif dev &            # in another shell
//	. .wif/env
//	go run ./examples/consumer
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/wif-project/wif/wifclient"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	url := fs.String("url", "", "the API to call (default $WIF_GATEWAY_URL, else $WIF_DEMO_API_URL)")
	scope := fs.String("scope", "api://provider-api/.default", "the scope of the access token")
	every := fs.Duration("every", 0, "call again at this interval until interrupted (0: call once)")
	count := fs.Int("count", 0, "with --every, stop after this many calls (0: until interrupted)")
	fresh := fs.Bool("fresh", false, "get a new access token for each call (a new credential each time, so each call exchanges the current federated token file)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		*url = getenv("WIF_GATEWAY_URL")
	}
	if *url == "" {
		*url = getenv("WIF_DEMO_API_URL")
	}
	if *url == "" {
		return errors.New("no API URL: give --url, or load the environment of `wif dev` (. .wif/env)")
	}
	newCred := func() (azcore.TokenCredential, error) {
		// The only change from Entra-only code: MSAL would otherwise ask
		// login.microsoftonline.com whether the authority host is a known
		// cloud, and refuse wif's.
		return azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{DisableInstanceDiscovery: true})
	}
	cred, err := newCred()
	if err != nil {
		return fmt.Errorf("credential: %w", err)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: wifclient.New(cred, *scope)}
	for n := 1; ; n++ {
		if *fresh && n > 1 {
			if cred, err = newCred(); err != nil {
				return fmt.Errorf("credential: %w", err)
			}
			client.Transport = wifclient.New(cred, *scope)
		}
		if err := call(ctx, client, *url, out); err != nil {
			return err
		}
		if *every == 0 || (*count > 0 && n >= *count) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*every):
		}
	}
}

// call calls url (the client's transport attaches the token, from the
// credential's cache while it is valid), printing the status and body. A
// status other than 200 is an error.
func call(ctx context.Context, client *http.Client, url string, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("call %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the answer of %s: %w", url, err)
	}
	fmt.Fprintf(out, "%s %s\n%s\n", resp.Status, url, body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}
