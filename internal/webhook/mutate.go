package webhook

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Config is what the mutation needs besides the pod and its service account.
// Build it once (from flags) and check it with Validate.
type Config struct {
	// TenantID is the default tenant, used when the service account has no
	// tenant-id annotation.
	TenantID string
	// AuthorityHost is AZURE_AUTHORITY_HOST, with a trailing '/'.
	AuthorityHost string
	// Audience of the projected token (default api://AzureADTokenExchange).
	Audience string
	// LegacyTokenPath mounts the token at v1.5.1's path for older clients.
	LegacyTokenPath bool
	// ProxyImage is the sidecar's image (runs `wif imds`).
	ProxyImage string
	// ProxyInitImage is the redirect init container's image (upstream's
	// proxy-init: iptables redirect of 169.254.169.254:80 to PROXY_PORT).
	ProxyInitImage string
	// NativeSidecar injects the sidecar as an init container with
	// restartPolicy Always (API servers ≥ 1.29) instead of first in containers.
	NativeSidecar bool
	// NewIdentityHeader returns a fresh IDENTITY_HEADER value; nil uses 32
	// random bytes in hex. Tests set it for golden output.
	NewIdentityHeader func() string
}

// Validate reports every fault in c at once and fills defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	if c.AuthorityHost != "" && !strings.HasSuffix(c.AuthorityHost, "/") {
		c.AuthorityHost += "/"
	}
	if c.AuthorityHost != "" && !strings.HasPrefix(c.AuthorityHost, "https://") && !strings.HasPrefix(c.AuthorityHost, "http://") {
		errs = append(errs, fmt.Errorf("authority host %q is not a URL: expected e.g. https://login.microsoftonline.com/ or wif's public URL", c.AuthorityHost))
	}
	if c.ProxyImage == "" {
		c.ProxyImage = DefaultProxyImage
	}
	if c.ProxyInitImage == "" {
		c.ProxyInitImage = DefaultProxyInitImg
	}
	if c.NewIdentityHeader == nil {
		c.NewIdentityHeader = randomHeader
	}
	return errors.Join(errs...)
}

func randomHeader() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Denial is a mutation refused because of the pod or its service account; its
// message goes to the user as the admission response's status message.
type Denial struct{ Msg string }

func (d *Denial) Error() string { return d.Msg }

func deny(format string, args ...any) error { return &Denial{Msg: fmt.Sprintf(format, args...)} }

// Mutate applies the injection rules to pod (changed in place), whose
// namespace is authoritative in namespace and whose service account is sa.
// It returns admission warnings, or a *Denial.
func (c *Config) Mutate(pod *corev1.Pod, namespace string, sa *corev1.ServiceAccount) (warnings []string, err error) {
	podName := pod.Name
	if podName == "" {
		podName = pod.GenerateName + " (prefix)"
	}
	pod.Namespace = namespace

	expiration, err := TokenExpiration(pod, sa)
	if err != nil {
		return nil, err
	}
	clientID := sa.Annotations[ClientIDAnnotation]
	tenantID, ok := sa.Annotations[TenantIDAnnotation]
	if !ok {
		tenantID = c.TenantID
	}
	skip := SkipContainers(pod)

	var sidecar *sidecarSettings
	if _, ok := pod.Annotations[InjectProxySidecarAnnotation]; ok {
		if sidecar, err = c.injectSidecar(pod); err != nil {
			return nil, err
		}
	}

	mountPath, tokenRel, tokenFile := VolumeMountPath, TokenFileRelPath, TokenFilePath
	if c.LegacyTokenPath {
		mountPath, tokenRel, tokenFile = "/var/run/secrets/azure/tokens", "azure-identity-token", LegacyTokenFilePath
	}
	volumeName := VolumeName(podName)
	env := []corev1.EnvVar{
		{Name: EnvClientID, Value: clientID},
		{Name: EnvTenantID, Value: tenantID},
		{Name: EnvFederatedToken, Value: tokenFile},
		{Name: EnvAuthorityHost, Value: c.AuthorityHost},
	}
	mount := corev1.VolumeMount{Name: volumeName, MountPath: mountPath, ReadOnly: true}
	missingClientID := false
	mutate := func(cs []corev1.Container, init bool) {
		for i := range cs {
			ct := &cs[i]
			if skip[ct.Name] || (ct.Name == ProxyInitName && sidecar != nil) {
				continue
			}
			addEnv(ct, env)
			if sidecar != nil {
				if ct.Name == ProxyContainerName {
					addEnv(ct, []corev1.EnvVar{{Name: EnvIdentityHeader, Value: sidecar.header}})
				} else if !init || c.NativeSidecar {
					addEnv(ct, []corev1.EnvVar{
						{Name: EnvIdentityEndpoint, Value: sidecar.endpoint},
						{Name: EnvIdentityHeader, Value: sidecar.header},
						{Name: EnvMSIEndpoint, Value: sidecar.endpoint},
						{Name: EnvMSISecret, Value: sidecar.header},
					})
				}
			}
			replaceMount(ct, mount)
			if clientID == "" && !hasEnv(ct, EnvClientID) {
				missingClientID = true
			}
		}
	}
	mutate(pod.Spec.InitContainers, true)
	mutate(pod.Spec.Containers, false)

	mode := int32(420)
	volume := corev1.Volume{Name: volumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
			Path: tokenRel, ExpirationSeconds: &expiration, Audience: c.Audience,
		}}},
		DefaultMode: &mode,
	}}}
	replaced := false
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == volumeName {
			pod.Spec.Volumes[i], replaced = volume, true
		}
	}
	if !replaced {
		pod.Spec.Volumes = append(pod.Spec.Volumes, volume)
	}

	if missingClientID {
		warnings = append(warnings, fmt.Sprintf(
			"service account %s/%s has no %s annotation, so %s is not injected: the Azure SDK cannot tell which identity to use; annotate the service account with the managed identity's client id",
			namespace, sa.Name, ClientIDAnnotation, EnvClientID))
	}
	return warnings, nil
}

// TokenExpiration is the projected token's expirationSeconds: the pod's
// annotation, else the service account's, else the default; out of range is
// a *Denial with upstream's message.
func TokenExpiration(pod *corev1.Pod, sa *corev1.ServiceAccount) (int64, error) {
	exp := DefaultTokenExpiration
	raw, where := pod.Annotations[TokenExpirationAnnotation], "pod"
	if raw == "" {
		raw, where = sa.Annotations[TokenExpirationAnnotation], "service account"
	}
	if raw != "" {
		v, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return 0, deny("%s annotation %s on the %s is not an integer: %v. Expected value to be between %d and %d",
				TokenExpirationAnnotation, strconv.Quote(raw), where, err, MinTokenExpiration, MaxTokenExpiration)
		}
		exp = v
	}
	if exp < MinTokenExpiration || exp > MaxTokenExpiration {
		return 0, deny("token expiration %d not valid. Expected value to be between %d and %d", exp, MinTokenExpiration, MaxTokenExpiration)
	}
	return exp, nil
}

// SkipContainers parses the skip-containers annotation.
func SkipContainers(pod *corev1.Pod) map[string]bool {
	raw := pod.Annotations[SkipContainersAnnotation]
	if raw == "" {
		return nil
	}
	out := map[string]bool{}
	for _, n := range strings.Split(raw, ";") {
		if n = strings.TrimSpace(n); n != "" {
			out[n] = true
		}
	}
	return out
}

// ProxyPort parses the proxy-sidecar-port annotation.
func ProxyPort(pod *corev1.Pod) (int32, error) {
	raw, ok := pod.Annotations[ProxySidecarPortAnnotation]
	if !ok {
		return DefaultProxyPort, nil
	}
	p, err := strconv.ParseInt(raw, 10, 32)
	if err != nil {
		return 0, deny("failed to parse proxy sidecar port: %v", err)
	}
	if p < 1 || p > 65535 {
		return 0, deny("proxy sidecar port %d not valid. Expected value to be between 1 and 65535", p)
	}
	return int32(p), nil
}

// VolumeName is v1.6.0's projected volume name for a pod name (or
// generateName + " (prefix)").
func VolumeName(podName string) string {
	sum := sha256.Sum256([]byte(podName))
	return VolumeNamePrefix + hex.EncodeToString(sum[:])[:63-len(VolumeNamePrefix)]
}

type sidecarSettings struct {
	endpoint, header string
}

// injectSidecar adds the managed-identity sidecar (and, when asked, the
// redirect init container). It is idempotent: a container already named
// azwi-proxy or azwi-proxy-init is kept as it is, and the IDENTITY_HEADER
// already given to the sidecar is reused.
func (c *Config) injectSidecar(pod *corev1.Pod) (*sidecarSettings, error) {
	port, err := ProxyPort(pod)
	if err != nil {
		return nil, err
	}
	redirect := strings.EqualFold(pod.Annotations[ProxySidecarRedirectAnnotation], "true")
	if redirect && pod.Spec.HostNetwork {
		return nil, deny("hostNetwork is set to true, cannot inject proxy sidecar: the %s init container would redirect the node's IMDS traffic; remove %s or hostNetwork",
			ProxyInitName, ProxySidecarRedirectAnnotation)
	}
	s := &sidecarSettings{endpoint: fmt.Sprintf("http://127.0.0.1:%d%s", port, identityEndpointPath)}
	if existing := findContainer(pod, ProxyContainerName); existing != nil {
		for _, e := range existing.Env {
			if e.Name == EnvIdentityHeader {
				s.header = e.Value
			}
		}
	}
	if s.header == "" {
		s.header = c.NewIdentityHeader()
	}

	if redirect && findContainer(pod, ProxyInitName) == nil {
		f, t, root := false, true, int64(0)
		pod.Spec.InitContainers = append([]corev1.Container{{
			Name:            ProxyInitName,
			Image:           c.ProxyInitImage,
			ImagePullPolicy: corev1.PullIfNotPresent,
			SecurityContext: &corev1.SecurityContext{
				Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}},
				Privileged:   &t, RunAsNonRoot: &f, RunAsUser: &root,
			},
			Env: []corev1.EnvVar{{Name: EnvProxyPort, Value: strconv.Itoa(int(port))}},
		}}, pod.Spec.InitContainers...)
	}
	if findContainer(pod, ProxyContainerName) != nil {
		return s, nil
	}
	f, t := false, true
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	ready := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
		Host: "127.0.0.1", Path: "/readyz", Port: intstr.FromInt32(port),
	}}, PeriodSeconds: 1, FailureThreshold: 30}
	sc := corev1.Container{
		Name:            ProxyContainerName,
		Image:           c.ProxyImage,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         []string{"wif"},
		Args:            []string{"imds", "--listen", listen},
		Ports:           []corev1.ContainerPort{{ContainerPort: port, Protocol: corev1.ProtocolTCP}},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: &f,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			Privileged:               &f,
			ReadOnlyRootFilesystem:   &t,
			RunAsNonRoot:             &t,
		},
	}
	if c.NativeSidecar {
		// The kubelet starts the next init container, and then the app,
		// only once a native sidecar's startup probe has passed.
		always := corev1.ContainerRestartPolicyAlways
		sc.RestartPolicy = &always
		sc.StartupProbe = ready
		idx := 0
		if len(pod.Spec.InitContainers) > 0 && pod.Spec.InitContainers[0].Name == ProxyInitName {
			idx = 1 // after the redirect, before every user init container
		}
		pod.Spec.InitContainers = append(pod.Spec.InitContainers[:idx:idx], append([]corev1.Container{sc}, pod.Spec.InitContainers[idx:]...)...)
	} else {
		// First in containers; the kubelet starts containers in order and
		// waits for a postStart hook before starting the next one, so the
		// hook polls /readyz until the sidecar listens.
		sc.ReadinessProbe = ready
		sc.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
			Command: []string{"wif", "imds", "probe", "--url", "http://" + listen + "/readyz", "--timeout", "30s"},
		}}}
		pod.Spec.Containers = append([]corev1.Container{sc}, pod.Spec.Containers...)
	}
	return s, nil
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// addEnv appends each variable the container does not define yet (by name;
// valueFrom counts) and whose value is not empty, so the user's value wins.
func addEnv(ct *corev1.Container, env []corev1.EnvVar) {
	for _, e := range env {
		if e.Value != "" && !hasEnv(ct, e.Name) {
			ct.Env = append(ct.Env, e)
		}
	}
}

func hasEnv(ct *corev1.Container, name string) bool {
	for _, e := range ct.Env {
		if e.Name == name {
			return true
		}
	}
	return false
}

// replaceMount replaces the mount of the same volume name, or appends it.
func replaceMount(ct *corev1.Container, m corev1.VolumeMount) {
	for i := range ct.VolumeMounts {
		if ct.VolumeMounts[i].Name == m.Name {
			ct.VolumeMounts[i] = m
			return
		}
	}
	ct.VolumeMounts = append(ct.VolumeMounts, m)
}
