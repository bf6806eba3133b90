package admin

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/store"
)

// Bounds of a stale report.
const (
	// DefaultStaleDays is the window of GET .../staleCredentials without
	// days=.
	DefaultStaleDays = 30
	// MaxStaleDays is the longest window.
	MaxStaleDays = 366
	// IssuerFailingAfter is how long an issuer must have failed every fetch
	// to be reported.
	IssuerFailingAfter = 24 * time.Hour
)

// StaleReport lists what a tenant trusts but does not use: credentials no
// exchange matched in the window, and issuers the token service has not
// been able to reach for a day (their credentials cannot be used).
type StaleReport struct {
	Days  int       `json:"days"`
	Since time.Time `json:"since"`
	// Credentials are the credentials unused since Since, oldest use
	// first (never used first of all).
	Credentials []StaleCredential `json:"credentials"`
	// Young counts the credentials made inside the window and not used
	// yet: too new to call stale, so not listed.
	Young int `json:"young"`
	// Issuers are the trusted issuers whose discovery document or keys the
	// token service has failed to fetch for at least a day.
	Issuers []FailingIssuer `json:"issuers"`
}

// StaleCredential is a credential no exchange matched in the window.
type StaleCredential struct {
	// Kind is "managedIdentity" or "application".
	Kind string `json:"kind"`
	// Parent names the owner: "resourceGroup/name" of an identity, the
	// display name of an application.
	Parent   string `json:"parent"`
	ClientID string `json:"clientId"`
	Name     string `json:"name"`
	Issuer   string `json:"issuer"`
	// Subject is the subject, or the claims expression's text.
	Subject   string     `json:"subject"`
	CreatedAt time.Time  `json:"createdDateTime"`
	LastUsed  *time.Time `json:"lastUsedDateTime"`
}

// FailingIssuer is an issuer that has not answered for a while.
type FailingIssuer struct {
	Issuer       string     `json:"issuer"`
	FailingSince time.Time  `json:"failingSince"`
	LastSuccess  *time.Time `json:"lastSuccess"`
	LastError    string     `json:"lastError,omitempty"`
	// Credentials counts the tenant's credentials that trust it.
	Credentials int `json:"credentials"`
}

func (h *Handler) staleCredentials(w http.ResponseWriter, r *http.Request) error {
	tid, err := h.tenantID(r)
	if err != nil {
		return err
	}
	days := DefaultStaleDays
	if v := r.URL.Query().Get("days"); v != "" {
		if days, err = strconv.Atoi(v); err != nil || days < 1 || days > MaxStaleDays {
			return errorf(http.StatusBadRequest, CodeInvalidQueryOptions, "days must be an integer from 1 to %d, not %q", MaxStaleDays, clipText(v, 20))
		}
	}
	ctx := r.Context()
	if _, err := h.cfg.Store.GetTenant(ctx, tid); err != nil {
		return notFound(err, "tenant %s", tid)
	}
	now := time.Now().UTC()
	since := now.Add(-time.Duration(days) * 24 * time.Hour)
	type parent struct{ kind, name, clientID string }
	var parents []parent
	mis, err := h.cfg.Store.ListManagedIdentities(ctx, tid, store.IdentityFilter{})
	if err != nil {
		return err
	}
	for _, m := range mis {
		parents = append(parents, parent{"managedIdentity", m.ResourceGroup + "/" + m.Name, m.ClientID})
	}
	apps, err := h.cfg.Store.ListApplications(ctx, tid)
	if err != nil {
		return err
	}
	for _, a := range apps {
		parents = append(parents, parent{"application", a.DisplayName, a.AppID})
	}
	used, err := h.cfg.Store.CredentialUsage(ctx, tid)
	if err != nil {
		return err
	}
	rep := &StaleReport{Days: days, Since: since, Credentials: []StaleCredential{}, Issuers: []FailingIssuer{}}
	trusted := map[string]int{}
	for _, p := range parents {
		fs, err := h.cfg.Store.ListFederatedCredentials(ctx, tid, p.clientID)
		if err != nil {
			return err
		}
		for _, f := range fs {
			trusted[f.Issuer]++
			last := used[f.ID]
			if last.After(since) {
				continue
			}
			if last.IsZero() && f.CreatedAt.After(since) {
				rep.Young++
				continue
			}
			rep.Credentials = append(rep.Credentials, StaleCredential{Kind: p.kind, Parent: p.name, ClientID: p.clientID, Name: f.Name,
				Issuer: f.Issuer, Subject: credSubject(f), CreatedAt: f.CreatedAt.UTC(), LastUsed: timePtr(last)})
		}
	}
	slices.SortFunc(rep.Credentials, func(a, b StaleCredential) int {
		var ta, tb time.Time
		if a.LastUsed != nil {
			ta = *a.LastUsed
		}
		if b.LastUsed != nil {
			tb = *b.LastUsed
		}
		return cmp.Or(ta.Compare(tb), strings.Compare(a.Parent, b.Parent), strings.Compare(a.Name, b.Name))
	})
	statuses, err := h.cfg.Store.IssuerStatuses(ctx)
	if err != nil {
		return err
	}
	// Only issuers this tenant trusts: another tenant's issuers are not
	// this admin's to see.
	for iss, st := range statuses {
		n := trusted[iss]
		if n == 0 || !st.Failing() || now.Sub(st.FailingSince) < IssuerFailingAfter {
			continue
		}
		rep.Issuers = append(rep.Issuers, FailingIssuer{Issuer: st.Issuer, FailingSince: st.FailingSince.UTC(), LastSuccess: timePtr(st.LastSuccess),
			LastError: st.LastError, Credentials: n})
	}
	slices.SortFunc(rep.Issuers, func(a, b FailingIssuer) int {
		return cmp.Or(a.FailingSince.Compare(b.FailingSince), strings.Compare(a.Issuer, b.Issuer))
	})
	return respond(w, 200, "", rep)
}

// credSubject is what a credential matches as subject, for a person.
func credSubject(f directory.FederatedCredential) string {
	if f.ClaimsMatchingExpression != nil {
		return "claims: " + f.ClaimsMatchingExpression.Value
	}
	return f.Subject
}
