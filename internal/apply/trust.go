package apply

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
	"github.com/wif-project/wif/internal/trust"
)

// The kinds of trust object.
const (
	KindTrustedIssuer Kind = "trusted issuer"
	KindIssuerSet     Kind = "issuer set"
)

// TrustedIssuer is a tenant's settings for one issuer (see
// directory.TrustedIssuer). A pushed issuer's keys belong to its agent:
// a document's jwks seeds them when the issuer is created, apply keeps them
// afterwards, and export leaves them out.
type TrustedIssuer struct {
	Name      string `json:"name"`
	Issuer    string `json:"issuer"`
	KeySource string `json:"keySource,omitempty"`
	CABundle  string `json:"caBundle,omitempty"`
	// JWKS is the uploaded key set (keySource jwks), as a JSON object.
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	Algorithms              []string        `json:"algorithms,omitempty"`
	MaxTokenLifetimeSeconds int64           `json:"maxTokenLifetimeSeconds,omitempty"`
	RequireKeyUse           bool            `json:"requireKeyUse,omitempty"`
	AllowPrivateAddresses   bool            `json:"allowPrivateAddresses,omitempty"`
	PushClientID            string          `json:"pushClientId,omitempty"`
	KeyOverlapSeconds       int64           `json:"keyOverlapSeconds,omitempty"`
	Description             string          `json:"description,omitempty"`
}

// IssuerSet is an issuer set (see directory.IssuerSet).
type IssuerSet struct {
	Name        string   `json:"name"`
	Issuers     []string `json:"issuers"`
	Description string   `json:"description,omitempty"`
}

// toDirectory is t as stored in tenant tid, with its key set compacted;
// keys is an error message when the set is not usable.
func (t TrustedIssuer) toDirectory(tid string) (directory.TrustedIssuer, string) {
	ks := directory.KeySource(t.KeySource)
	if ks == "" {
		ks = directory.KeySourceDiscovery
		if len(t.JWKS) > 0 {
			ks = directory.KeySourceJWKS
		}
	}
	out := directory.TrustedIssuer{TenantID: tid, Name: t.Name, Issuer: t.Issuer, KeySource: ks, CABundle: t.CABundle,
		Algorithms: slices.Clone(t.Algorithms), MaxTokenLifetimeSeconds: t.MaxTokenLifetimeSeconds, RequireKeyUse: t.RequireKeyUse,
		AllowPrivateAddresses: t.AllowPrivateAddresses, PushClientID: t.PushClientID, KeyOverlapSeconds: t.KeyOverlapSeconds, Description: t.Description}
	if len(t.JWKS) > 0 && string(t.JWKS) != "null" {
		b, err := trust.UsableKeySet(t.JWKS, t.RequireKeyUse)
		if err != nil {
			return out, err.Error()
		}
		out.JWKS = string(b)
	}
	return out, ""
}

// validateTrust checks a tenant's trusted issuers and issuer sets.
func validateTrust(tp, tid string, t Tenant) directory.ValidationErrors {
	var errs directory.ValidationErrors
	add := func(prefix string, err error) {
		if err == nil {
			return
		}
		if ves, ok := err.(directory.ValidationErrors); ok {
			for _, e := range ves {
				errs = append(errs, &directory.ValidationError{Field: prefix + "." + e.Field, Rule: e.Rule, Value: e.Value})
			}
			return
		}
		errs = append(errs, &directory.ValidationError{Field: prefix, Rule: err.Error()})
	}
	names, issuers := map[string]int{}, map[string]int{}
	for i, ti := range t.TrustedIssuers {
		p := fmt.Sprintf("%s.trustedIssuers[%d]", tp, i)
		d, keysErr := ti.toDirectory(tid)
		verr := d.Validate()
		if keysErr != "" {
			errs = append(errs, &directory.ValidationError{Field: p + ".jwks", Rule: keysErr})
			// The set's own fault is reported; not also "is required".
			if ves, ok := verr.(directory.ValidationErrors); ok {
				verr = slices.DeleteFunc(slices.Clone(ves), func(e *directory.ValidationError) bool { return e.Field == "jwks" })
				if len(verr.(directory.ValidationErrors)) == 0 {
					verr = nil
				}
			}
		}
		add(p, verr)
		if j, ok := names[strings.ToLower(ti.Name)]; ok {
			errs = append(errs, &directory.ValidationError{Field: p + ".name", Value: ti.Name, Rule: fmt.Sprintf("is also the name of trustedIssuers[%d]", j)})
		}
		names[strings.ToLower(ti.Name)] = i
		if j, ok := issuers[ti.Issuer]; ok {
			errs = append(errs, &directory.ValidationError{Field: p + ".issuer", Value: ti.Issuer, Rule: fmt.Sprintf("is also the issuer of trustedIssuers[%d]", j)})
		}
		issuers[ti.Issuer] = i
	}
	setNames := map[string]int{}
	for i, s := range t.IssuerSets {
		p := fmt.Sprintf("%s.issuerSets[%d]", tp, i)
		add(p, directory.IssuerSet{TenantID: tid, Name: s.Name, Issuers: s.Issuers, Description: s.Description}.Validate())
		if j, ok := setNames[strings.ToLower(s.Name)]; ok {
			errs = append(errs, &directory.ValidationError{Field: p + ".name", Value: s.Name, Rule: fmt.Sprintf("is also the name of issuerSets[%d]", j)})
		}
		setNames[strings.ToLower(s.Name)] = i
	}
	return errs
}

// exportTrust is a tenant's trusted issuers and issuer sets as a document
// holds them, sorted by name.
func exportTrust(tid string, snap store.Snapshot) ([]TrustedIssuer, []IssuerSet) {
	var tis []TrustedIssuer
	for _, t := range snap.TrustedIssuers {
		if t.TenantID != tid {
			continue
		}
		d := TrustedIssuer{Name: t.Name, Issuer: t.Issuer, KeySource: string(t.KeySource), CABundle: t.CABundle,
			Algorithms: slices.Clone(t.Algorithms), MaxTokenLifetimeSeconds: t.MaxTokenLifetimeSeconds, RequireKeyUse: t.RequireKeyUse,
			AllowPrivateAddresses: t.AllowPrivateAddresses, PushClientID: t.PushClientID, KeyOverlapSeconds: t.KeyOverlapSeconds, Description: t.Description}
		if t.KeySource == directory.KeySourceJWKS {
			d.JWKS = json.RawMessage(t.JWKS)
		}
		tis = append(tis, d)
	}
	sort.Slice(tis, func(i, j int) bool { return strings.ToLower(tis[i].Name) < strings.ToLower(tis[j].Name) })
	var sets []IssuerSet
	for _, s := range snap.IssuerSets {
		if s.TenantID == tid {
			sets = append(sets, IssuerSet{Name: s.Name, Issuers: slices.Clone(s.Issuers), Description: s.Description})
		}
	}
	sort.Slice(sets, func(i, j int) bool { return strings.ToLower(sets[i].Name) < strings.ToLower(sets[j].Name) })
	return tis, sets
}

// trustView is what a plan compares of a trusted issuer: everything but
// a pushed issuer's keys, which are its agent's.
type trustView struct {
	Issuer                  string   `json:"issuer"`
	KeySource               string   `json:"keySource"`
	CABundle                string   `json:"caBundle"`
	JWKS                    string   `json:"jwks"`
	Algorithms              []string `json:"algorithms"`
	MaxTokenLifetimeSeconds int64    `json:"maxTokenLifetimeSeconds"`
	RequireKeyUse           bool     `json:"requireKeyUse"`
	AllowPrivateAddresses   bool     `json:"allowPrivateAddresses"`
	PushClientID            string   `json:"pushClientId"`
	KeyOverlapSeconds       int64    `json:"keyOverlapSeconds"`
	Description             string   `json:"description"`
}

func viewOf(t directory.TrustedIssuer) trustView {
	v := trustView{t.Issuer, string(t.KeySource), t.CABundle, t.JWKS, t.Algorithms, t.MaxTokenLifetimeSeconds, t.RequireKeyUse,
		t.AllowPrivateAddresses, strings.ToLower(t.PushClientID), t.KeyOverlapSeconds, t.Description}
	if t.KeySource == directory.KeySourcePushed {
		v.JWKS = ""
	}
	if len(v.JWKS) > 64 {
		v.JWKS = fmt.Sprintf("(%d bytes)", len(v.JWKS))
	}
	if len(v.CABundle) > 64 {
		v.CABundle = fmt.Sprintf("(%d bytes)", len(v.CABundle))
	}
	return v
}

// trust plans a tenant's trusted issuers and issuer sets.
func (pl *planner) trust(tid string, t Tenant, exists bool) {
	var oldTIs []directory.TrustedIssuer
	var oldSets []directory.IssuerSet
	if exists {
		for _, x := range pl.snap.TrustedIssuers {
			if x.TenantID == tid {
				oldTIs = append(oldTIs, x)
			}
		}
		for _, x := range pl.snap.IssuerSets {
			if x.TenantID == tid {
				oldSets = append(oldSets, x)
			}
		}
	}
	byName := map[string]directory.TrustedIssuer{}
	for _, x := range oldTIs {
		byName[strings.ToLower(x.Name)] = x
	}
	want := map[string]bool{}
	for _, ti := range t.TrustedIssuers {
		w, _ := ti.toDirectory(tid)
		want[strings.ToLower(w.Name)] = true
		name := tid + "/" + w.Name
		old, ok := byName[strings.ToLower(w.Name)]
		if !ok {
			if w.JWKS != "" {
				w.KeysUpdatedAt = time.Now().UTC()
			}
			pl.upserts[1] = append(pl.upserts[1], Change{Action: Create, Kind: KindTrustedIssuer, Name: name,
				do: func(ctx context.Context, s store.DirectoryStore) error {
					_, err := s.CreateTrustedIssuer(ctx, w)
					return err
				}})
			continue
		}
		if w.KeySource == directory.KeySourcePushed {
			// The agent's keys stay: a document's jwks seeds a pushed
			// issuer when it is created, never after.
			w.JWKS = old.JWKS
		}
		d := diffObjects(viewOf(old), viewOf(w))
		if len(d) == 0 {
			continue
		}
		pl.upserts[1] = append(pl.upserts[1], Change{Action: Update, Kind: KindTrustedIssuer, Name: name, Diff: d,
			do: func(ctx context.Context, s store.DirectoryStore) error {
				_, err := s.UpdateTrustedIssuer(ctx, tid, w.Name, func(x *directory.TrustedIssuer) error {
					keys, retired, at := x.JWKS, x.RetiredKeys, x.KeysUpdatedAt
					*x = directory.TrustedIssuer{TenantID: x.TenantID, Name: x.Name, Meta: x.Meta, Issuer: w.Issuer, KeySource: w.KeySource,
						CABundle: w.CABundle, JWKS: w.JWKS, Algorithms: w.Algorithms, MaxTokenLifetimeSeconds: w.MaxTokenLifetimeSeconds,
						RequireKeyUse: w.RequireKeyUse, AllowPrivateAddresses: w.AllowPrivateAddresses, PushClientID: w.PushClientID,
						KeyOverlapSeconds: w.KeyOverlapSeconds, Description: w.Description, KeysUpdatedAt: at}
					if w.KeySource == directory.KeySourcePushed {
						x.JWKS, x.RetiredKeys = keys, retired
					} else if w.JWKS != keys {
						x.KeysUpdatedAt = time.Now().UTC()
					}
					if x.JWKS == "" {
						x.KeysUpdatedAt = time.Time{}
					}
					return nil
				})
				return err
			}})
	}
	setsByName := map[string]directory.IssuerSet{}
	for _, x := range oldSets {
		setsByName[strings.ToLower(x.Name)] = x
	}
	wantSets := map[string]bool{}
	for _, s := range t.IssuerSets {
		w := directory.IssuerSet{TenantID: tid, Name: s.Name, Issuers: slices.Clone(s.Issuers), Description: s.Description}
		wantSets[strings.ToLower(w.Name)] = true
		name := tid + "/" + w.Name
		old, ok := setsByName[strings.ToLower(w.Name)]
		if !ok {
			pl.upserts[1] = append(pl.upserts[1], Change{Action: Create, Kind: KindIssuerSet, Name: name,
				do: func(ctx context.Context, st store.DirectoryStore) error {
					_, err := st.CreateIssuerSet(ctx, w)
					return err
				}})
			continue
		}
		type setView struct {
			Issuers     []string `json:"issuers"`
			Description string   `json:"description"`
		}
		d := diffObjects(setView{old.Issuers, old.Description}, setView{w.Issuers, w.Description})
		if len(d) == 0 {
			continue
		}
		pl.upserts[1] = append(pl.upserts[1], Change{Action: Update, Kind: KindIssuerSet, Name: name, Diff: d,
			do: func(ctx context.Context, st store.DirectoryStore) error {
				_, err := st.UpdateIssuerSet(ctx, tid, w.Name, func(x *directory.IssuerSet) error {
					x.Issuers, x.Description = w.Issuers, w.Description
					return nil
				})
				return err
			}})
	}
	if !pl.prune {
		return
	}
	for _, o := range oldTIs {
		name := tid + "/" + o.Name
		if want[strings.ToLower(o.Name)] || pl.keep(KindTrustedIssuer, name, name) {
			continue
		}
		o := o
		pl.deletes[3] = append(pl.deletes[3], Change{Action: Delete, Kind: KindTrustedIssuer, Name: name,
			do: func(ctx context.Context, s store.DirectoryStore) error {
				return ignoreNotFound(s.DeleteTrustedIssuer(ctx, o.TenantID, o.Name))
			}})
	}
	for _, o := range oldSets {
		name := tid + "/" + o.Name
		if wantSets[strings.ToLower(o.Name)] || pl.keep(KindIssuerSet, name, name) {
			continue
		}
		o := o
		pl.deletes[3] = append(pl.deletes[3], Change{Action: Delete, Kind: KindIssuerSet, Name: name,
			do: func(ctx context.Context, s store.DirectoryStore) error {
				return ignoreNotFound(s.DeleteIssuerSet(ctx, o.TenantID, o.Name))
			}})
	}
}
