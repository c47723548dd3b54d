"""The Kubernetes Gateway API on the mesh: Gateways, routes and ReferenceGrants
converted, by pure functions, into the Istio-model resources the translator serves
(`convert`), with the Gateway API's status of each."""
