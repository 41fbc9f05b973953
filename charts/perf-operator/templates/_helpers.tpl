{{- define "perf-operator.labels" -}}
app.kubernetes.io/name: perf-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "perf-operator.selector" -}}
app.kubernetes.io/name: perf-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
