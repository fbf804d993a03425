// Package deploy_test checks the Kubernetes manifests in deploy/k8s: every
// document decodes strictly into its Kubernetes API type (a misspelt field
// fails), and the pieces fit together.
package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/lojal/lojal/internal/deploy"
)

type manifests struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	pdbs        map[string]*policyv1.PodDisruptionBudget
	hpas        map[string]*autoscalingv2.HorizontalPodAutoscaler
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	jobs        map[string]*batchv1.Job
}

func load(t *testing.T) manifests {
	t.Helper()
	m := manifests{deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, jobs: map[string]*batchv1.Job{}}
	files, _ := filepath.Glob("k8s/*.yaml")
	if len(files) < 6 {
		t.Fatalf("only %d manifest files", len(files))
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(b), "\n---\n") {
			var head struct{ Kind string }
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s #%d: %v", f, i, err)
			}
			var obj interface{ GetName() string }
			switch head.Kind {
			case "Deployment":
				obj = &appsv1.Deployment{}
			case "Service":
				obj = &corev1.Service{}
			case "PodDisruptionBudget":
				obj = &policyv1.PodDisruptionBudget{}
			case "HorizontalPodAutoscaler":
				obj = &autoscalingv2.HorizontalPodAutoscaler{}
			case "ConfigMap":
				obj = &corev1.ConfigMap{}
			case "Secret":
				obj = &corev1.Secret{}
			case "Job":
				obj = &batchv1.Job{}
			default:
				t.Fatalf("%s #%d: unexpected kind %q", f, i, head.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s #%d (%s): %v", f, i, head.Kind, err)
			}
			name := obj.GetName()
			switch o := obj.(type) {
			case *appsv1.Deployment:
				m.deployments[name] = o
			case *corev1.Service:
				m.services[name] = o
			case *policyv1.PodDisruptionBudget:
				m.pdbs[name] = o
			case *autoscalingv2.HorizontalPodAutoscaler:
				m.hpas[name] = o
			case *corev1.ConfigMap:
				m.configMaps[name] = o
			case *corev1.Secret:
				m.secrets[name] = o
			case *batchv1.Job:
				m.jobs[name] = o
			}
		}
	}
	return m
}

func TestManifestsFitTogether(t *testing.T) {
	t.Parallel()
	m := load(t)
	for _, name := range []string{"lojal-worker", "lojal-api"} {
		d, ok := m.deployments[name]
		if !ok {
			t.Fatalf("no deployment %s", name)
		}
		labels := d.Spec.Template.Labels
		if !reflect.DeepEqual(d.Spec.Selector.MatchLabels, map[string]string{"app.kubernetes.io/name": name}) ||
			labels["app.kubernetes.io/name"] != name {
			t.Errorf("%s: selector %v does not match pod labels %v", name, d.Spec.Selector.MatchLabels, labels)
		}
		c := d.Spec.Template.Spec.Containers[0]
		if c.LivenessProbe == nil || c.ReadinessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("%s: probes %+v %+v", name, c.LivenessProbe, c.ReadinessProbe)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: resources %+v", name, c.Resources)
		}
		if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
			t.Errorf("%s: root filesystem is writable", name)
		}
		for _, e := range c.Env {
			if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil && ref.SecretKeyRef.Name != "lojal-secrets" {
				t.Errorf("%s: %s refers to secret %s", name, e.Name, ref.SecretKeyRef.Name)
			}
			if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
				if _, ok := m.secrets["lojal-secrets"].StringData[ref.SecretKeyRef.Key]; !ok {
					t.Errorf("%s: secret key %s is not in secret.example.yaml", name, ref.SecretKeyRef.Key)
				}
			}
		}
		if _, ok := m.configMaps[c.EnvFrom[0].ConfigMapRef.Name]; !ok {
			t.Errorf("%s: envFrom %s missing", name, c.EnvFrom[0].ConfigMapRef.Name)
		}
		if cm := d.Spec.Template.Spec.Volumes[0].ConfigMap; cm == nil || m.configMaps[cm.Name] == nil {
			t.Errorf("%s: journeys volume does not name a ConfigMap here", name)
		}
		// Draining must fit in the grace period.
		if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g <= 45 {
			t.Errorf("%s: grace period %v is not longer than LOJAL_SHUTDOWN_TIMEOUT 45s", name, g)
		}
		svc, pdb, hpa := m.services[name], m.pdbs[name], m.hpas[name]
		if svc == nil || !reflect.DeepEqual(svc.Spec.Selector, d.Spec.Selector.MatchLabels) {
			t.Errorf("%s: service selector", name)
		}
		if pdb == nil || !reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) || pdb.Spec.MinAvailable.IntValue() < 1 {
			t.Errorf("%s: pod disruption budget", name)
		}
		if hpa == nil || hpa.Spec.ScaleTargetRef.Name != name || hpa.Spec.MaxReplicas < *hpa.Spec.MinReplicas {
			t.Errorf("%s: autoscaler", name)
		}
		for _, p := range svc.Spec.Ports {
			found := false
			for _, cp := range c.Ports {
				found = found || cp.Name == p.TargetPort.String()
			}
			if !found {
				t.Errorf("%s: service port %s has no container port", name, p.TargetPort.String())
			}
		}
	}
}

// TestJourneysConfigMapIsCurrent: deploy/k8s/journeys.yaml is generated
// from journeys/ (make k8s); it must not drift.
func TestJourneysConfigMapIsCurrent(t *testing.T) {
	t.Parallel()
	m := load(t)
	cm := m.configMaps["lojal-journeys"]
	if cm == nil {
		t.Fatal("no lojal-journeys ConfigMap")
	}
	var bundle deploy.Bundle
	if err := json.Unmarshal([]byte(cm.Data["journeys.json"]), &bundle); err != nil {
		t.Fatal(err)
	}
	files, err := deploy.Files(os.DirFS("../journeys"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(bundle.Files, files) || cm.Labels["lojal/journeys-hash"] != deploy.Hash(files) {
		t.Fatal("deploy/k8s/journeys.yaml is out of date with journeys/: run make k8s")
	}
	if _, err := deploy.ReadBundle([]byte(cm.Data["journeys.json"])); err != nil {
		t.Fatal(err)
	}
}

// TestRolloutsAreControlled: found by an operations review of the
// manifests.
//   - Every image was ghcr.io/lojal/lojal:latest: a new image changed
//     nothing in the spec (no rollout), any restart pulled whatever latest
//     was then (old and new workers side by side with no control), and
//     `kubectl rollout undo` brought back the same template. The release
//     is pinned in one place, kustomization.yaml's images.
//   - The migration was a Job applied with the Deployments: new pods
//     crash-looped until it finished, and a Job's template cannot change,
//     so the next release's migration never ran. Each pod now migrates
//     first, in an init container (a no-op when the schema is current;
//     concurrent runs take turns on an advisory lock).
//   - The API stopped listening at SIGTERM while load balancers still sent
//     it requests for a few seconds: it now waits in preStop first.
func TestRolloutsAreControlled(t *testing.T) {
	t.Parallel()
	m := load(t)
	var k struct {
		Images []struct {
			Name    string `json:"name"`
			NewTag  string `json:"newTag"`
			Digest  string `json:"digest"`
			NewName string `json:"newName"`
		} `json:"images"`
	}
	b, err := os.ReadFile("k8s/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	if len(k.Images) != 1 || k.Images[0].Name != "ghcr.io/lojal/lojal" || (k.Images[0].Digest == "" && (k.Images[0].NewTag == "" || k.Images[0].NewTag == "latest")) {
		t.Errorf("kustomization.yaml images %+v: want ghcr.io/lojal/lojal pinned to a release tag or digest", k.Images)
	}
	if len(m.jobs) != 0 {
		t.Errorf("jobs %v: the migration runs in each pod's init container", len(m.jobs))
	}
	for name, d := range m.deployments {
		spec := d.Spec.Template.Spec
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			if c.Image != "ghcr.io/lojal/lojal" {
				t.Errorf("%s/%s: image %q, want ghcr.io/lojal/lojal (its release is set in kustomization.yaml)", name, c.Name, c.Image)
			}
		}
		if len(spec.InitContainers) != 1 || !reflect.DeepEqual(spec.InitContainers[0].Args, []string{"migrate"}) {
			t.Errorf("%s: init containers %+v, want one running lojal migrate", name, spec.InitContainers)
			continue
		}
		mig := spec.InitContainers[0]
		if len(mig.Env) == 0 || mig.Env[0].Name != "DATABASE_URL" || mig.Env[0].ValueFrom == nil || mig.Env[0].ValueFrom.SecretKeyRef == nil {
			t.Errorf("%s: the migration's DATABASE_URL %+v", name, mig.Env)
		}
		if mig.SecurityContext == nil || mig.SecurityContext.ReadOnlyRootFilesystem == nil || !*mig.SecurityContext.ReadOnlyRootFilesystem {
			t.Errorf("%s: the migration's root filesystem is writable", name)
		}
	}
	api := m.deployments["lojal-api"]
	c := api.Spec.Template.Spec.Containers[0]
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds < 5 {
		t.Fatalf("lojal-api: preStop %+v, want a sleep of 5 s or more", c.Lifecycle)
	}
	if g := *api.Spec.Template.Spec.TerminationGracePeriodSeconds; g < c.Lifecycle.PreStop.Sleep.Seconds+45+5 {
		t.Errorf("lojal-api: grace period %ds does not cover the preStop sleep, the 45 s drain and 5 s of traces", g)
	}
}

// TestWorkersSignMail: Gmail, Yahoo and Outlook require DKIM of bulk
// senders, and the manifests configured none: every email went out
// unsigned, and nothing said so. The worker reads its key from the
// lojal-secrets Secret, mounted as a file.
func TestWorkersSignMail(t *testing.T) {
	t.Parallel()
	m := load(t)
	w := m.deployments["lojal-worker"].Spec.Template.Spec
	c := w.Containers[0]
	file := ""
	for _, e := range c.Env {
		if e.Name == "LOJAL_DKIM_KEY_FILE" {
			file = e.Value
		}
	}
	if file == "" {
		t.Fatal("lojal-worker: no LOJAL_DKIM_KEY_FILE")
	}
	if m.configMaps["lojal-config"].Data["LOJAL_DKIM_SELECTOR"] == "" {
		t.Error("lojal-config: no LOJAL_DKIM_SELECTOR")
	}
	mounted := false
	for _, vm := range c.VolumeMounts {
		for _, v := range w.Volumes {
			if v.Name != vm.Name || v.Secret == nil || v.Secret.SecretName != "lojal-secrets" {
				continue
			}
			for _, it := range v.Secret.Items {
				if filepath.Join(vm.MountPath, it.Path) == file {
					mounted = true
					if _, ok := m.secrets["lojal-secrets"].StringData[it.Key]; !ok {
						t.Errorf("secret key %s is not in secret.example.yaml", it.Key)
					}
				}
			}
		}
	}
	if !mounted {
		t.Errorf("lojal-worker: %s is not a file of a lojal-secrets volume", file)
	}
}
