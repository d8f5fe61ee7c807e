// Pins the Gateway API release whose CRDs (config/crd/standard) the chart tests install
// into the local kube-apiserver. Nothing is built from it: build.sh downloads the module
// (checked against go.sum) and reads the YAML from Go's module cache.
module k8s-api-proxy/hack/control-plane/gateway-api

go 1.26.0

require sigs.k8s.io/gateway-api v1.6.3
