package jose

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/wif-project/wif/internal/store/memory"
)

// threadCPU is the CPU time (user + system) of the calling OS thread.
func threadCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSignVsRSA alternates Sign and the raw RSA signature with the
// same key, one of each per iteration in alternating order, and reports
// the CPU time of each (of the benchmark's own OS thread, so other load on
// the machine does not count) and their ratio: the overhead of Sign (JOSE
// header, base64, JSON) over the RSA operation it cannot avoid.
func BenchmarkSignVsRSA(b *testing.B) {
	m, err := NewManager(b.Context(), Options{Store: memory.New()})
	if err != nil {
		b.Fatal(err)
	}
	payload := typicalClaims(b)
	priv := m.keys.Load().signerAt(time.Now()).priv
	digest := sha256.Sum256(payload)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var signCPU, rawCPU time.Duration
	sign := func() {
		t := threadCPU(b)
		if _, err := m.Sign(payload, true); err != nil {
			b.Fatal(err)
		}
		signCPU += threadCPU(b) - t
	}
	raw := func() {
		t := threadCPU(b)
		if _, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest[:]); err != nil {
			b.Fatal(err)
		}
		rawCPU += threadCPU(b) - t
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			sign()
			raw()
		} else {
			raw()
			sign()
		}
	}
	b.ReportMetric(float64(signCPU.Nanoseconds())/float64(b.N), "sign-cpu-ns/op")
	b.ReportMetric(float64(rawCPU.Nanoseconds())/float64(b.N), "rsa-cpu-ns/op")
	b.ReportMetric(float64(signCPU)/float64(rawCPU), "sign/rsa")
}
