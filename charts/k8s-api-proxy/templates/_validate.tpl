{{/*
Cross-field checks the schema cannot express. Every problem is reported at once, each
naming the values involved; included by deployment.yaml, so `helm template`, `helm install`
and `helm upgrade` all fail before anything reaches the cluster.
*/}}
{{- define "k8s-api-proxy.validate" -}}
{{- $v := .Values -}}
{{- $errs := list -}}
{{- $replicas := int $v.replicaCount -}}

{{- /* A PodDisruptionBudget that allows no disruption makes every node drain hang. */ -}}
{{- if $v.podDisruptionBudget.enabled -}}
{{- $min := $v.podDisruptionBudget.minAvailable -}}
{{- $max := $v.podDisruptionBudget.maxUnavailable -}}
{{- if and (kindIs "invalid" $min) (kindIs "invalid" $max) -}}
{{- $errs = append $errs "podDisruptionBudget.enabled=true needs podDisruptionBudget.maxUnavailable or podDisruptionBudget.minAvailable" -}}
{{- else if not (kindIs "invalid" $min) -}}
{{- $need := 0 -}}
{{- if kindIs "string" $min -}}
{{- $p := int (trimSuffix "%" $min) -}}
{{- $need = div (add (mul $p $replicas) 99) 100 -}}
{{- else -}}
{{- $need = int $min -}}
{{- end -}}
{{- if ge (int $need) $replicas -}}
{{- $errs = append $errs (printf "podDisruptionBudget.minAvailable=%v with replicaCount=%d allows no voluntary disruption, so node drains would hang: raise replicaCount, lower minAvailable, or use podDisruptionBudget.maxUnavailable (minAvailable: null)" $min $replicas) -}}
{{- end -}}
{{- else if or (and (kindIs "string" $max) (eq (int (trimSuffix "%" $max)) 0)) (and (not (kindIs "string" $max)) (eq (int $max) 0)) -}}
{{- $errs = append $errs (printf "podDisruptionBudget.maxUnavailable=%v allows no voluntary disruption, so node drains would hang: use at least 1" $max) -}}
{{- end -}}
{{- end -}}

{{- /* kubelet kills the container after the grace period, whatever the proxy is still draining. */ -}}
{{- $drain := add (int $v.shutdownDelaySeconds) (int $v.shutdownTimeoutSeconds) -}}
{{- if le (int $v.terminationGracePeriodSeconds) (int $drain) -}}
{{- $errs = append $errs (printf "terminationGracePeriodSeconds=%d must exceed shutdownDelaySeconds=%d + shutdownTimeoutSeconds=%d = %d, or kubelet kills the proxy while it still drains requests" (int $v.terminationGracePeriodSeconds) (int $v.shutdownDelaySeconds) (int $v.shutdownTimeoutSeconds) (int $drain)) -}}
{{- end -}}

{{- /* Repeating a label the chart sets gives duplicate keys; a changed selector label breaks the install. */ -}}
{{- $own := include "k8s-api-proxy.chartLabels" . | fromYaml -}}
{{- range $field := list "commonLabels" "podLabels" -}}
{{- range $key, $_ := (get $v $field) -}}
{{- if hasKey $own $key -}}
{{- $errs = append $errs (printf "%s.%s: the chart sets this label itself (%s: %v); choose another key" $field $key $key (get $own $key)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- if and (not $v.serviceAccount.create) (not $v.serviceAccount.name) -}}
{{- $errs = append $errs "serviceAccount.create=false needs serviceAccount.name: the existing ServiceAccount to run as and bind" -}}
{{- end -}}

{{- /* The API server rejects these on a ClusterIP Service; say so before it does. */ -}}
{{- $svc := $v.service -}}
{{- if and $svc.loadBalancerSourceRanges (ne $svc.type "LoadBalancer") -}}
{{- $errs = append $errs (printf "service.loadBalancerSourceRanges needs service.type=LoadBalancer (it is %s)" $svc.type) -}}
{{- end -}}
{{- if and $svc.externalTrafficPolicy (eq $svc.type "ClusterIP") -}}
{{- $errs = append $errs (printf "service.externalTrafficPolicy=%s needs service.type=LoadBalancer or NodePort (it is ClusterIP)" $svc.externalTrafficPolicy) -}}
{{- end -}}
{{- if and $svc.nodePort (eq $svc.type "ClusterIP") -}}
{{- $errs = append $errs (printf "service.nodePort=%v needs service.type=LoadBalancer or NodePort (it is ClusterIP)" $svc.nodePort) -}}
{{- end -}}

{{- if $v.ingress.enabled -}}
{{- $classes := include "k8s-api-proxy.passthroughIngressClasses" . | fromYaml -}}
{{- if not $v.ingress.tlsPassthrough -}}
{{- $errs = append $errs "ingress.tlsPassthrough=false: an Ingress that terminates TLS strips the client certificate, so mTLS would refuse every request. Keep tlsPassthrough=true, or use gatewayAPI.tlsRoute (passthrough) or a LoadBalancer Service" -}}
{{- else if not (hasKey $classes $v.ingress.className) -}}
{{- $errs = append $errs (printf "ingress.className=%q is not a controller known to pass TLS through (%s): an Ingress it terminates would strip the client certificate and mTLS would refuse every request. Use gatewayAPI.tlsRoute (passthrough) or service.type=LoadBalancer instead" $v.ingress.className (keys $classes | sortAlpha | join ", ")) -}}
{{- end -}}
{{- end -}}

{{- with $v.gatewayAPI.tlsRoute -}}
{{- if .enabled -}}
{{- if not .parentRefs -}}
{{- $errs = append $errs "gatewayAPI.tlsRoute.enabled=true needs gatewayAPI.tlsRoute.parentRefs: the Gateway (and its TLS listener in Passthrough mode) to attach to" -}}
{{- end -}}
{{- if not .hostnames -}}
{{- $errs = append $errs "gatewayAPI.tlsRoute.enabled=true needs gatewayAPI.tlsRoute.hostnames: the SNI names clients use (each one of the server certificate's SANs)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- with $v.helmTest -}}
{{- if and .enabled (not .existingSecret) (not (and .clientCrt .clientKey)) -}}
{{- $errs = append $errs "helmTest.enabled=true needs helmTest.existingSecret (a Secret with tls.crt, tls.key and ca.crt) or helmTest.clientCrt and helmTest.clientKey (base64 of certs/client.crt and certs/client.key)" -}}
{{- else if and .enabled (not .existingSecret) (not .caCrt) (not $v.tls.caCrt) -}}
{{- $errs = append $errs "helmTest.enabled=true with tls.existingSecret needs helmTest.caCrt (base64 of the CA that signed the server certificate) or helmTest.existingSecret" -}}
{{- end -}}
{{- end -}}

{{- if $errs -}}
{{- fail (printf "\n- %s" (join "\n- " $errs)) -}}
{{- end -}}
{{- end -}}
