// k8scheck decodes Kubernetes manifests strictly into the Kubernetes API
// types (k8s.io/api): an unknown or misspelt field, a wrong type or an
// unknown kind is an error. No cluster is needed.
//
//	go run . FILE.yaml...
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + "/" + kind {
	case "v1/Secret":
		return &corev1.Secret{}, nil
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1/Pod":
		return &corev1.Pod{}, nil
	case "v1/Service":
		return &corev1.Service{}, nil
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, nil
	case "apps/v1/StatefulSet":
		return &appsv1.StatefulSet{}, nil
	}
	return nil, fmt.Errorf("unknown kind %s %s", apiVersion, kind)
}

func check(file string) (int, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	n := 0
	for i, doc := range strings.Split(string(data), "\n---") {
		if strings.TrimSpace(strings.TrimPrefix(doc, "---")) == "" {
			continue
		}
		// YAML -> JSON, refusing duplicate keys.
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			return n, fmt.Errorf("document %d: %w", i+1, err)
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := json.Unmarshal(js, &meta); err != nil {
			return n, fmt.Errorf("document %d: %w", i+1, err)
		}
		obj, err := newObject(meta.APIVersion, meta.Kind)
		if err != nil {
			return n, fmt.Errorf("document %d: %w", i+1, err)
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(obj); err != nil {
			return n, fmt.Errorf("document %d (%s): %w", i+1, meta.Kind, err)
		}
		fmt.Printf("%s: %s %s decodes strictly\n", file, meta.APIVersion, meta.Kind)
		n++
	}
	return n, nil
}

func main() {
	bad := false
	for _, f := range os.Args[1:] {
		if n, err := check(f); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			bad = true
		} else if n == 0 {
			fmt.Fprintf(os.Stderr, "%s: no documents\n", f)
			bad = true
		}
	}
	if bad {
		os.Exit(1)
	}
}
