package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/wif-project/wif/internal/apply"
)

func newApplyCommand(streams Streams) *cobra.Command {
	var file string
	var dryRun, prune bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|-",
		Short: "Make the directory match a directory document (idempotent; deletes only with --prune)",
		Long: `Apply a directory document (see 'wif export'): create what is missing, update
what differs, and with --prune delete what the document does not mention.
Objects are matched by natural key, so a document without ids applies
idempotently. --dry-run prints the changes without making them.`,
		Args: cobra.NoArgs,
	}
	af := addAdminFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		var r io.Reader = streams.In
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				return fmt.Errorf("open directory document: %w", err)
			}
			defer f.Close()
			r = f
		}
		data, err := io.ReadAll(io.LimitReader(r, apply.MaxDocumentBytes+1))
		if err != nil {
			return fmt.Errorf("read directory document: %w", err)
		}
		c, err := af.client(ctx)
		if err != nil {
			return err
		}
		res, err := c.Apply(ctx, data, dryRun, prune)
		if err != nil {
			return err
		}
		if af.output == "table" && af.query == "" {
			_, err := io.WriteString(streams.Out, res.Summary)
			if err == nil && dryRun && res.Applied == 0 && len(res.Changes) > 0 {
				_, err = fmt.Fprintln(streams.ErrOut, "(dry run: nothing was changed)")
			}
			return err
		}
		return af.print(streams.Out, res, nil)
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the directory document (YAML or JSON); - reads standard input")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the changes without making them")
	cmd.Flags().BoolVar(&prune, "prune", false, "delete objects (even whole tenants) the document does not mention")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func newExportCommand(streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Print the whole directory as a document for 'wif apply -f'",
		Args:  cobra.NoArgs,
	}
	af := addAdminFlags(cmd)
	af.output = "yaml"
	cmd.PersistentFlags().Lookup("output").DefValue = "yaml"
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		c, err := af.client(ctx)
		if err != nil {
			return err
		}
		y, err := c.Export(ctx)
		if err != nil {
			return err
		}
		if af.output == "yaml" && af.query == "" {
			_, err = streams.Out.Write(y)
			return err
		}
		doc, err := apply.Parse(bytesReader(y))
		if err != nil {
			return fmt.Errorf("the server's export does not parse: %w", err)
		}
		return af.print(streams.Out, doc, nil)
	}
	return cmd
}
