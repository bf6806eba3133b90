package sts

import (
	"context"
	"crypto"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/wif-project/wif/internal/directory"
	"github.com/wif-project/wif/internal/trust"
)

// KeyRequest asks a KeySource for one key of an external issuer.
type KeyRequest struct {
	// Issuer is the issuer's exact iss: its keys come from
	// {Issuer}/.well-known/openid-configuration.
	Issuer string
	KID    string
	// Profile names how the issuer is fetched when a tenant's trusted
	// issuer says so (a CA bundle, private addresses); "" is the default.
	Profile string
	// RequireUse refuses a key that does not say "use": "sig".
	RequireUse bool
}

// issuerPolicy is a tenant's trusted issuer as the token endpoint uses it.
type issuerPolicy struct {
	name        string
	source      directory.KeySource
	algs        []string
	maxLifetime time.Duration
	requireUse  bool
	// profile (discovery) is the fetch profile name, "" for the default.
	profile string
	// keys and retired (jwks, pushed) are the object's own keys, by kid;
	// a retired key verifies until its time.
	keys          map[string]*jose.JSONWebKey
	retired       map[string]retiredKey
	keysUpdatedAt time.Time
	// keysProblem says why no key of the object is usable, if none is.
	keysProblem string
}

type retiredKey struct {
	key   *jose.JSONWebKey
	until time.Time
}

// profileName names a trusted issuer's fetch settings; it changes with
// every update of the object, so a changed CA bundle gets a new client.
func profileName(t directory.TrustedIssuer) string {
	return t.TenantID + "/" + strings.ToLower(t.Name) + "@" + fmt.Sprint(t.Version)
}

// compilePolicy turns a trusted issuer into its policy (and, for a
// discovery issuer with its own fetch settings, the fetch profile).
func compilePolicy(t directory.TrustedIssuer) (*issuerPolicy, *trust.Profile) {
	p := &issuerPolicy{
		name: t.Name, source: t.KeySource, algs: t.AllowedAlgorithms(), maxLifetime: t.MaxTokenLifetime(),
		requireUse: t.RequireKeyUse, keysUpdatedAt: t.KeysUpdatedAt,
	}
	if t.KeySource == directory.KeySourceDiscovery {
		if t.CABundle == "" && !t.AllowPrivateAddresses {
			return p, nil
		}
		p.profile = profileName(t)
		return p, &trust.Profile{CABundle: []byte(t.CABundle), AllowPrivateAddresses: t.AllowPrivateAddresses}
	}
	p.keys = map[string]*jose.JSONWebKey{}
	p.retired = map[string]retiredKey{}
	opts := trust.KeySetOptions{RequireUse: t.RequireKeyUse}
	if t.JWKS == "" {
		p.keysProblem = "no keys have been uploaded or pushed yet"
	} else if set, err := trust.ParseKeySet([]byte(t.JWKS), opts); err != nil {
		p.keysProblem = err.Error()
	} else {
		for i := range set.Keys {
			if k := &set.Keys[i]; k.KeyID != "" {
				p.keys[k.KeyID] = k
			}
		}
		if len(p.keys) == 0 {
			p.keysProblem = "the key set has no usable signing key with a kid: " + strings.Join(set.Skipped, "; ")
		}
	}
	for _, r := range t.RetiredKeys {
		set, err := trust.ParseKeySet(append(append([]byte(`{"keys":[`), r.Key...), ']', '}'), opts)
		if err != nil || len(set.Keys) != 1 || set.Keys[0].KeyID == "" {
			continue
		}
		if _, current := p.keys[set.Keys[0].KeyID]; !current {
			p.retired[set.Keys[0].KeyID] = retiredKey{key: &set.Keys[0], until: r.Until}
		}
	}
	return p, nil
}

// issuerKey returns the key with kid of issuer iss, for a tenant whose
// trusted issuer for iss is pol (nil: none, the default discovery).
func (s *Service) issuerKey(ctx context.Context, pol *issuerPolicy, iss, kid string) (crypto.PublicKey, error) {
	if pol == nil || pol.source == directory.KeySourceDiscovery {
		req := KeyRequest{Issuer: iss, KID: kid}
		if pol != nil {
			req.Profile, req.RequireUse = pol.profile, pol.requireUse
		}
		return s.cfg.Keys.Key(ctx, req)
	}
	if k := pol.keys[kid]; k != nil {
		return k.Key, nil
	}
	if r, ok := pol.retired[kid]; ok {
		if s.cfg.Now().Before(r.until) {
			return r.key.Key, nil
		}
		return nil, fmt.Errorf("%w: kid %s was removed from trusted issuer %q's keys by a push and stopped verifying at %s", ErrUnknownKID, quote(kid), pol.name, r.until.UTC().Format(time.RFC3339))
	}
	if pol.keysProblem != "" {
		return nil, fmt.Errorf("%w: trusted issuer %q (keys %s) has no usable key: %s", ErrIssuerMetadataInvalid, pol.name, pol.source, pol.keysProblem)
	}
	kids := make([]string, 0, len(pol.keys))
	for k := range pol.keys {
		kids = append(kids, quote(k))
	}
	return nil, fmt.Errorf("%w: kid %s is not among the %d keys of trusted issuer %q (keys %s, updated %s; kids: %s)", ErrUnknownKID, quote(kid), len(pol.keys), pol.name,
		pol.source, pol.keysUpdatedAt.UTC().Format(time.RFC3339), strings.Join(kids, ", "))
}

func quote(s string) string { return strconv.Quote(clip(s)) }

// algorithmsFor lists the algorithms issuer iss may sign with in a tenant
// whose trusted issuer for it is pol: the object's, else the operator's
// --issuer-algorithms, else RS256.
func (s *Service) algorithmsFor(pol *issuerPolicy, iss string) []string {
	if pol != nil {
		return pol.algs
	}
	return s.algorithmsOf(iss)
}

// FetchProfile returns the fetch settings a profile names, if some
// trusted issuer of the current directory has them.
func (s *Service) FetchProfile(name string) (trust.Profile, error) {
	idx := s.dir.load()
	if idx == nil {
		return trust.Profile{}, fmt.Errorf("the directory is not loaded")
	}
	p, ok := idx.profiles[name]
	if !ok {
		return trust.Profile{}, fmt.Errorf("no trusted issuer of the current directory has fetch profile %q", name)
	}
	return p.profile, nil
}

// AllowsFetch reports whether the key cache may fetch issuer iss with
// profile: some credential trusts iss and, for a profile, some trusted
// issuer of the current directory defines it.
func (s *Service) AllowsFetch(iss, profile string) bool {
	idx := s.dir.load()
	if idx == nil || !idx.issuers[iss] {
		return false
	}
	if profile == "" {
		return true
	}
	p, ok := idx.profiles[profile]
	return ok && p.issuer == iss
}

// profileEntry is a fetch profile and the issuer it is for.
type profileEntry struct {
	issuer  string
	profile trust.Profile
}
