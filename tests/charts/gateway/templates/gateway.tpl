{{- $v := include "gw.values" . | fromYaml -}}
{{- $name := include "gw.name" . -}}
{{- if $v.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $v.serviceAccount.name | default $name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "gw.selectorLabels" . | nindent 4 }}
---
{{- end }}
{{- if $v.rbac.enabled }}
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get", "watch", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ $v.serviceAccount.name | default $name }}
---
{{- end }}
apiVersion: apps/v1
kind: {{ $v.kind }}
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "gw.labels" . | nindent 4 }}
spec:
  {{- if and (eq $v.kind "Deployment") (not $v.autoscaling.enabled) (not (kindIs "invalid" $v.replicaCount)) }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "gw.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      annotations:
        {{- toYaml $v.podAnnotations | nindent 8 }}
      labels:
        sidecar.istio.io/inject: "true"
        {{- if $v.revision }}
        istio.io/rev: {{ $v.revision }}
        {{- end }}
        {{- include "gw.labels" . | nindent 8 }}
    spec:
      serviceAccountName: {{ $v.serviceAccount.name | default $name }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: istio-proxy
          {{- $g := $v.global | default dict }}
          image: {{ if $g.hub }}{{ $g.hub }}/proxyv2:{{ $g.tag }}{{ else }}auto{{ end }}
          {{- with $v.imagePullPolicy }}
          imagePullPolicy: {{ . }}
          {{- end }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          ports:
            - containerPort: 15090
              protocol: TCP
              name: http-envoy-prom
---
{{- if ne $v.service.type "None" }}
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "gw.selectorLabels" . | nindent 4 }}
spec:
  type: {{ $v.service.type }}
  ports:
    {{- toYaml $v.service.ports | nindent 4 }}
  selector:
    {{- include "gw.selectorLabels" . | nindent 4 }}
{{- end }}
