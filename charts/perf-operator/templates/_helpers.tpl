{{- define "perf-operator.labels" -}}
app.kubernetes.io/name: perf-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "perf-operator.selector" -}}
app.kubernetes.io/name: perf-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Where the policy CA bundle is mounted; PERF_POLICY_CA_FILE names the file. */}}
{{- define "perf-operator.policyCADir" -}}
/etc/perf-operator/policy-ca
{{- end -}}

{{/*
NetworkPolicy peers of one allowance: its cidrs as ipBlocks, then its selectors. Empty when both are: the caller
then leaves out `to`/`from`, which means any address.
*/}}
{{- define "perf-operator.peers" -}}
{{- range .cidrs }}
- ipBlock: {cidr: {{ . | quote }}}
{{- end }}
{{- with .selectors }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The operator's ServiceAccount: serviceAccount.name, else the release name. */}}
{{- define "perf-operator.serviceAccountName" -}}
{{- default .Release.Name .Values.serviceAccount.name -}}
{{- end -}}
