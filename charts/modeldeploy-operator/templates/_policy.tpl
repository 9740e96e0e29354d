{{/*
Tenant policy helpers (values: policy). One source for the ValidatingAdmissionPolicy
(tenant-policy.yaml) and the operator's re-check (env MODELDEPLOY_POLICY, JSON read by
operator/modeldeploy_operator/policy.py).
*/}}

{{/* Image prefixes: policy.allowedImagePrefixes, else the runtime repository + ":" / "@". */}}
{{- define "modeldeploy-operator.policy.imagePrefixes" -}}
{{- if .Values.policy.allowedImagePrefixes }}
{{- toJson .Values.policy.allowedImagePrefixes }}
{{- else }}
{{- $repo := .Values.runtimeDefaults.image.repository }}
{{- toJson (list (printf "%s:" $repo) (printf "%s@" $repo)) }}
{{- end }}
{{- end }}

{{/* The operator's MODELDEPLOY_POLICY (same rules, same values). */}}
{{- define "modeldeploy-operator.policy.json" -}}
{{- $p := .Values.policy }}
{{- $doc := dict "imagePrefixes" (include "modeldeploy-operator.policy.imagePrefixes" . | fromJsonArray) "serviceAccounts" ($p.allowedServiceAccounts | default list) "secretOptInLabel" $p.secretOptInLabel "allowWildcardToleration" $p.allowWildcardToleration "forbiddenSchedulingKeys" ($p.forbiddenSchedulingKeys | default list) }}
{{- if not (kindIs "invalid" $p.maxGpus) }}{{- $_ := set $doc "maxGpus" (int $p.maxGpus) }}{{- end }}
{{- with $p.maxCpu }}{{- $_ := set $doc "maxCpu" (toString .) }}{{- end }}
{{- with $p.maxMemory }}{{- $_ := set $doc "maxMemory" (toString .) }}{{- end }}
{{- with $p.allowedVolumeTypes }}{{- $_ := set $doc "allowedVolumeTypes" . }}{{- end }}
{{- with $p.allowedProjects }}{{- $_ := set $doc "allowedProjects" . }}{{- end }}
{{- toJson $doc }}
{{- end }}

{{/*
CEL: every amount of resource `res` under spec.runtime.resources.limits and .requests is
at most `max`. Amounts are int-or-string, hence quantity(string(x)).
*/}}
{{- define "modeldeploy-operator.policy.maxExpr" -}}
{{- $r := "object.spec.runtime.resources" -}}
!has(object.spec.runtime) || !has({{ $r }}) || (
{{- range $i, $kind := list "limits" "requests" }}{{ if $i }} && {{ end -}}
(!has({{ $r }}.{{ $kind }}) || !({{ $.res | quote }} in {{ $r }}.{{ $kind }}) || quantity(string({{ $r }}.{{ $kind }}[{{ $.res | quote }}])).compareTo(quantity({{ $.max | toString | quote }})) <= 0)
{{- end -}}
)
{{- end }}
