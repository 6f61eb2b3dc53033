{{- define "gw.values" -}}
{{- toYaml (mustMergeOverwrite (deepCopy .Values.defaults) (omit .Values "defaults")) -}}
{{- end -}}
{{- define "gw.name" -}}
{{- $v := include "gw.values" . | fromYaml -}}
{{- $v.name | default .Release.Name -}}
{{- end -}}
{{/* app/istio labels as Istio's chart derives them; user `labels` override */}}
{{- define "gw.labels" -}}
{{- $v := include "gw.values" . | fromYaml -}}
{{- $name := include "gw.name" . -}}
{{- toYaml (mustMergeOverwrite (dict "app" $name "istio" ($name | trimPrefix "istio-")) ($v.labels | default dict)) -}}
{{- end -}}
{{- define "gw.selectorLabels" -}}
{{- $l := include "gw.labels" . | fromYaml -}}
app: {{ $l.app }}
istio: {{ $l.istio }}
{{- end -}}
