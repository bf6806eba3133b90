package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/jose"
)

func newKeysCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the token service's signing keys: list, rotate now, retire, seal anew under a new key-encryption key",
		Long: `The token service signs access tokens with RSA keys it rotates itself (every 30
days; each key published 48 h before it signs and 25 h after). These commands
act on them through the admin API, as a directory admin of the operator
tenant; every action is in the audit log.`,
	}
	af := addAdminFlags(cmd)
	tbl := func(ks ...jose.KeyInfo) func() table {
		return func() table {
			t := table{headers: []string{"Kid", "State", "Created", "PublishedSince", "SignsFrom", "SignsUntil", "PublishedUntil", "SealedWith"}}
			at := func(tm time.Time) string {
				if tm.IsZero() {
					return "-"
				}
				return tm.UTC().Format(time.RFC3339)
			}
			for _, k := range ks {
				sealed := k.SealedWith
				if sealed == "" {
					sealed = "-"
				}
				t.rows = append(t.rows, []string{k.KeyID, k.State, at(k.CreatedAt), at(k.PublishedSince), at(k.SignsFrom), at(k.SignsUntil), at(k.PublishedUntil), sealed})
			}
			return t
		}
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the signing keys: next, active, retiring (published, no longer signing) and retired",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.client(cmd.Context())
			if err != nil {
				return err
			}
			ks, err := c.ListKeys(cmd.Context())
			if err != nil {
				return err
			}
			if ks == nil {
				ks = []jose.KeyInfo{}
			}
			return af.print(streams.Out, ks, tbl(ks...))
		},
	}
	var now bool
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Start a rotation now: a next key is published at once and signs after the pre-publication period (48 h), or at once with --now",
		Long: `Start a rotation now. The new key is published at once. Without --now it
signs after the pre-publication period, so every validator that caches the
key set sees it before any token it signs; the key signing now stops then.

With --now (a suspected leak) the new key signs at once. The trade-off:
validators that cached the key set meet a kid they do not know; those that
refetch on an unknown kid (the Azure SDKs' validators, wif's gateway and
tokenauth) pick it up at once, others refuse the new tokens until their cache
expires (at most an hour for most). The old key stays published until its
tokens expire; retire it with 'wif keys retire KID' to refuse them at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.client(cmd.Context())
			if err != nil {
				return err
			}
			k, err := c.RotateKey(cmd.Context(), now)
			if err != nil {
				return err
			}
			if now {
				fmt.Fprintf(streams.ErrOut, "Key %s signs from now on. Validators that cached the key set refetch it when they meet its kid (or refuse its tokens until their cache expires); the previous key stays published until its tokens expire — retire it with 'wif keys retire KID' to refuse them now.\n", k.KeyID)
			} else {
				fmt.Fprintf(streams.ErrOut, "Key %s is published now and signs from %s; the key signing now stops then.\n", k.KeyID, k.SignsFrom.UTC().Format(time.RFC3339))
			}
			return af.print(streams.Out, k, tbl(k))
		},
	}
	rotate.Flags().BoolVar(&now, "now", false, "the new key signs at once (emergency: see the trade-off above)")
	retire := &cobra.Command{
		Use:   "retire KID",
		Short: "Retire a signing key: it leaves the key set at once and tokens it signed are refused",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd.Context())
			if err != nil {
				return err
			}
			k, err := c.RetireKey(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(streams.ErrOut, "Key %s retired: no longer published; tokens it signed are refused (at other replicas within seconds, at validators when they refetch the key set).\n", k.KeyID)
			return af.print(streams.Out, k, tbl(k))
		},
	}
	var kekFile string
	rewrap := &cobra.Command{
		Use:   "rewrap --new-kek-file FILE",
		Short: "Seal every signing key anew with a new key-encryption key, online",
		Long: `Seal every signing key at rest anew with a new key-encryption key, while the
token service runs:

  1. restart every replica with --key-encryption-key-file NEW and
     --previous-key-encryption-key-file OLD (both open keys; new keys are
     sealed with NEW);
  2. wif keys rewrap --new-kek-file NEW  (the file is read here only to
     name the key: its id is sent, never the key);
  3. restart the replicas without --previous-key-encryption-key-file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kek, err := jose.LoadKEK(kekFile, nil)
			if err != nil {
				return err
			}
			c, err := af.client(cmd.Context())
			if err != nil {
				return err
			}
			res, err := c.RewrapKeys(cmd.Context(), jose.KEKID(kek))
			if err != nil {
				return err
			}
			fmt.Fprintf(streams.ErrOut, "%d signing keys sealed anew with key-encryption key %s (%d already were, or hold no private key). Now restart the replicas without --previous-key-encryption-key-file.\n",
				len(res.Rewrapped), res.SealedWith, len(res.Unchanged))
			return af.print(streams.Out, res, func() table {
				t := table{headers: []string{"Kid", "Result"}}
				for _, k := range res.Rewrapped {
					t.rows = append(t.rows, []string{k, "sealed anew"})
				}
				for _, k := range res.Unchanged {
					t.rows = append(t.rows, []string{k, "unchanged"})
				}
				return t
			})
		},
	}
	rewrap.Flags().StringVar(&kekFile, "new-kek-file", "", "the new key-encryption key file (32 bytes, raw, base64 or hex)")
	_ = rewrap.MarkFlagRequired("new-kek-file")
	cmd.AddCommand(list, rotate, retire, rewrap)
	return cmd
}
