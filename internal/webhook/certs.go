package webhook

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wif-project/wif/internal/tlsutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Keys of the certificate Secret.
const (
	SecretCABundle = "ca.crt" // PEM: the current CA first, then older CAs still trusted
	SecretCAKey    = "ca.key"
	SecretCert     = "tls.crt"
	SecretKey      = "tls.key"
)

// CertManager keeps the webhook's serving certificate in a Secret shared by
// every replica: the first replica to start creates a CA and a certificate,
// any replica renews the certificate when a third of its life is left (and
// the CA likewise, keeping the old CA in the bundle until it expires), and
// each replica makes sure its MutatingWebhookConfiguration's caBundle holds
// the bundle. Concurrent replicas are reconciled by the Secret's
// resourceVersion: a conflicting update is dropped and the winner's Secret
// is read back.
type CertManager struct {
	// Client talks to the API server.
	Client kubernetes.Interface
	// Namespace and SecretName locate the Secret.
	Namespace, SecretName string
	// Hosts are the certificate's DNS names or IP addresses (e.g.
	// wif-webhook.wif-system.svc).
	Hosts []string
	// WebhookConfigName is the MutatingWebhookConfiguration whose caBundle
	// is kept in step ("" = none).
	WebhookConfigName string
	// Validity of the serving certificate (default 1 year) and of the CA
	// (default 10 years).
	Validity, CAValidity time.Duration
	// CheckInterval between reconciliations (default 10 minutes).
	CheckInterval time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger

	mu       sync.RWMutex
	cert     *tls.Certificate
	caBundle []byte
	ready    bool
}

func (m *CertManager) defaults() {
	if m.Validity == 0 {
		m.Validity = 365 * 24 * time.Hour
	}
	if m.CAValidity == 0 {
		m.CAValidity = 10 * 365 * 24 * time.Hour
	}
	if m.CheckInterval == 0 {
		m.CheckInterval = 10 * time.Minute
	}
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.Logger == nil {
		m.Logger = slog.New(slog.DiscardHandler)
	}
}

// Run reconciles until ctx ends, retrying failures after a few seconds.
func (m *CertManager) Run(ctx context.Context) {
	m.defaults()
	for {
		wait := m.CheckInterval
		if err := m.Reconcile(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			m.Logger.Warn("webhook certificate reconciliation failed; retrying", "err", err)
			wait = 2 * time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Reconcile runs one pass: read or create the Secret, renew what is due,
// load the certificate and patch the caBundle.
func (m *CertManager) Reconcile(ctx context.Context) error {
	m.defaults()
	secrets := m.Client.CoreV1().Secrets(m.Namespace)
	for attempt := 0; ; attempt++ {
		if attempt > 5 {
			return fmt.Errorf("secret %s/%s keeps changing or needs renewal after %d passes; is another writer fighting over it?", m.Namespace, m.SecretName, attempt)
		}
		sec, err := secrets.Get(ctx, m.SecretName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			data, err := m.fresh(nil)
			if err != nil {
				return err
			}
			sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: m.SecretName, Namespace: m.Namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "wif-webhook"}}, Data: data}
			if _, err := secrets.Create(ctx, sec, metav1.CreateOptions{}); err != nil {
				if apierrors.IsAlreadyExists(err) && attempt < 3 {
					continue // another replica won; read its Secret
				}
				return fmt.Errorf("create secret %s/%s: %w", m.Namespace, m.SecretName, err)
			}
			m.Logger.Info("created webhook certificate", "secret", m.Namespace+"/"+m.SecretName)
			continue
		}
		if err != nil {
			return fmt.Errorf("get secret %s/%s: %w", m.Namespace, m.SecretName, err)
		}
		data, changed, err := m.renew(sec.Data)
		if err != nil {
			return err
		}
		if changed {
			upd := sec.DeepCopy()
			upd.Data = data
			if _, err := secrets.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
				if apierrors.IsConflict(err) && attempt < 3 {
					continue
				}
				return fmt.Errorf("update secret %s/%s: %w", m.Namespace, m.SecretName, err)
			}
			m.Logger.Info("renewed webhook certificate", "secret", m.Namespace+"/"+m.SecretName)
			continue
		}
		pair, err := tls.X509KeyPair(data[SecretCert], data[SecretKey])
		if err != nil {
			return fmt.Errorf("load certificate from secret %s/%s: %w", m.Namespace, m.SecretName, err)
		}
		m.mu.Lock()
		m.cert, m.caBundle = &pair, data[SecretCABundle]
		m.mu.Unlock()
		if err := m.patchCABundle(ctx, data[SecretCABundle]); err != nil {
			return err
		}
		m.mu.Lock()
		m.ready = true
		m.mu.Unlock()
		return nil
	}
}

// fresh makes a new CA and certificate; the old bundle's CAs still valid are
// kept after the new CA.
func (m *CertManager) fresh(oldBundle []byte) (map[string][]byte, error) {
	ca, err := tlsutil.NewCA("wif-webhook-ca", m.CAValidity)
	if err != nil {
		return nil, err
	}
	bundle := append([]byte(nil), ca.CertPEM...)
	for _, c := range parseCerts(oldBundle) {
		if m.Now().Before(c.NotAfter) {
			bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("encode CA key: %w", err)
	}
	data := map[string][]byte{
		SecretCABundle: bundle,
		SecretCAKey:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	return data, m.issue(ca, data)
}

func (m *CertManager) issue(ca *tlsutil.CA, data map[string][]byte) error {
	leaf, err := ca.Issue(m.Hosts, m.Validity)
	if err != nil {
		return err
	}
	key, err := tlsutil.KeyPEM(leaf)
	if err != nil {
		return err
	}
	data[SecretCert] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]})
	data[SecretKey] = key
	return nil
}

// due reports whether c has less than a third of validity left at now.
func due(c *x509.Certificate, now time.Time, validity time.Duration) bool {
	return c.NotAfter.Sub(now) < validity/3
}

// renew returns the Secret data with whatever is due renewed.
func (m *CertManager) renew(data map[string][]byte) (map[string][]byte, bool, error) {
	cas := parseCerts(data[SecretCABundle])
	caKey, keyErr := parseKey(data[SecretCAKey])
	if len(cas) == 0 || keyErr != nil || due(cas[0], m.Now(), m.CAValidity) {
		out, err := m.fresh(data[SecretCABundle])
		return out, true, err
	}
	ca := &tlsutil.CA{Cert: cas[0], Key: caKey, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cas[0].Raw})}
	leafs := parseCerts(data[SecretCert])
	if len(leafs) == 0 || due(leafs[0], m.Now(), m.Validity) || leafs[0].CheckSignatureFrom(cas[0]) != nil || !coversHosts(leafs[0], m.Hosts) {
		out := map[string][]byte{}
		for k, v := range data {
			out[k] = v
		}
		return out, true, m.issue(ca, out)
	}
	return data, false, nil
}

func coversHosts(c *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if c.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func parseCerts(p []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, p = pem.Decode(p)
		if b == nil {
			return out
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil && b.Type == "CERTIFICATE" {
			out = append(out, c)
		}
	}
}

func parseKey(p []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, errors.New("no PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CA key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("CA key cannot sign")
	}
	return s, nil
}

func (m *CertManager) patchCABundle(ctx context.Context, bundle []byte) error {
	if m.WebhookConfigName == "" {
		return nil
	}
	api := m.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	cfg, err := api.Get(ctx, m.WebhookConfigName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get MutatingWebhookConfiguration %s: %w", m.WebhookConfigName, err)
	}
	changed := false
	for i := range cfg.Webhooks {
		if !bytes.Equal(cfg.Webhooks[i].ClientConfig.CABundle, bundle) {
			cfg.Webhooks[i].ClientConfig.CABundle = bundle
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if _, err := api.Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update caBundle of MutatingWebhookConfiguration %s: %w", m.WebhookConfigName, err)
	}
	m.Logger.Info("patched caBundle", "mutatingWebhookConfiguration", m.WebhookConfigName)
	return nil
}

// GetCertificate is a tls.Config.GetCertificate callback.
func (m *CertManager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.cert == nil {
		return nil, errors.New("webhook serving certificate not ready yet")
	}
	return m.cert, nil
}

// CABundle returns the PEM bundle clients should trust (nil before the first
// reconciliation).
func (m *CertManager) CABundle() []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.caBundle
}

// Ready is a readiness check: a certificate is loaded and the caBundle patched.
func (m *CertManager) Ready(context.Context) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.ready {
		return errors.New("serving certificate not ready yet")
	}
	return nil
}
