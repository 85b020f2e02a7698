/**
 * deploy/k8s/ without a Kubernetes cluster: every manifest parses, the kustomization lists them all, and what the
 * pods are told matches what the CLI does with it: STOMPEDE_* names are real settings, the container ports are
 * the ports the node opens with that environment, the probes ask the ops port for paths a live node answers
 * there, the node id the pod name gives is one the CLI accepts, and the grace period covers the drain.
 */
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_CONFIG, envName, loadConfig, type BrokerConfig } from '../../broker/config.js';
import { startBroker } from '../support/broker.js';
import { runCli } from './cli.js';
import { http } from './http.js';
import { REPO } from './repo.js';

const DIR = join(REPO, 'deploy/k8s');

interface Port {
  name?: string;
  containerPort?: number;
  port?: number;
  targetPort?: number | string;
}
interface Probe {
  httpGet?: { path?: string; port?: number | string };
  periodSeconds?: number;
  failureThreshold?: number;
  timeoutSeconds?: number;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath?: string }; configMapKeyRef?: { name?: string; key?: string } };
}
interface Container {
  name: string;
  image?: string;
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name?: string } }[];
  ports?: Port[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: { preStop?: unknown };
}
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  spec?: {
    replicas?: number;
    serviceName?: string;
    clusterIP?: string;
    sessionAffinity?: string;
    selector?: Record<string, string> & { matchLabels?: Record<string, string> };
    ports?: Port[];
    maxUnavailable?: number | string;
    minAvailable?: number | string;
    template?: {
      metadata?: { labels?: Record<string, string> };
      spec?: { terminationGracePeriodSeconds?: number; containers?: Container[] };
    };
  };
}

const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f));
const manifests: { file: string; doc: Manifest }[] = files.flatMap((file) =>
  parseAllDocuments(readFileSync(join(DIR, file), 'utf8')).map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    return { file, doc: d.toJS() as Manifest };
  }),
);
const ofKind = (kind: string): Manifest[] => manifests.filter((m) => m.doc.kind === kind).map((m) => m.doc);
const one = (kind: string): Manifest => {
  const found = ofKind(kind);
  expect(found, `one ${kind}`).to.have.length(1);
  return found[0] as Manifest;
};

/** Does every label of `selector` appear, with its value, in `labels`? */
function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  const wanted = Object.entries(selector ?? {});
  return wanted.length > 0 && wanted.every(([k, v]) => labels?.[k] === v);
}

/** The STOMPEDE_* environment of the node container in pod `podName`, from its ConfigMap(s) and env entries. */
function nodeEnvironment(container: Container, podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    const map = ofKind('ConfigMap').find((c) => c.metadata.name === from.configMapRef?.name);
    expect(map, `ConfigMap ${String(from.configMapRef?.name)}`).to.not.equal(undefined);
    Object.assign(env, map?.data ?? {});
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = podName;
    else throw new Error(`env ${e.name}: a value form this spec does not know`);
  }
  return env;
}

describe('ops › Kubernetes manifests (deploy/k8s/)', function () {
  this.timeout(30_000);
  const set = one('StatefulSet');
  const pod = set.spec?.template;
  const container = pod?.spec?.containers?.find((c) => c.name === 'stompede') as Container;
  const podLabels = pod?.metadata?.labels;
  const envOf = (ordinal: number): Record<string, string> => nodeEnvironment(container, `${set.metadata.name}-${ordinal}`);
  const config = (): Readonly<BrokerConfig> => loadConfig({ env: envOf(0) });

  /** A container port by number or by name. */
  function containerPort(ref: number | string | undefined): number | undefined {
    const port = container.ports?.find((p) => p.containerPort === ref || p.name === ref);
    return port?.containerPort;
  }

  it('parses every file, and the kustomization lists every manifest', () => {
    const kustomization = parseAllDocuments(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8'))[0]?.toJS() as {
      resources?: string[];
    };
    expect(kustomization.resources).to.have.members(files.filter((f) => f !== 'kustomization.yaml'));
    expect(ofKind('StatefulSet').length + ofKind('Deployment').length).to.equal(1);
    for (const kind of ['ConfigMap', 'Service', 'PodDisruptionBudget']) expect(ofKind(kind), kind).to.not.deep.equal([]);
  });

  it('runs three replicas of the image this package builds, whose selector matches the pod template', () => {
    expect(set.spec?.replicas).to.equal(3);
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
    expect(container.image, 'the image tag is the package version').to.match(
      new RegExp(`(^|/)stompede:${pkg.version.replaceAll('.', '\\.')}$`),
    );
    expect(container, 'a container named stompede').to.not.equal(undefined);
    expect(selects(set.spec?.selector?.matchLabels, podLabels)).to.equal(true);
  });

  it('sets only STOMPEDE_* variables that are real settings, and the CLI accepts them for every pod (--print-config)', async () => {
    const known = new Set(Object.keys(DEFAULT_CONFIG).map(envName));
    for (const ordinal of [0, 1, 2]) {
      const env = envOf(ordinal);
      expect(
        Object.keys(env).filter((k) => !known.has(k)),
        'unknown variables',
      ).to.deep.equal([]);
      const r = await runCli(['--print-config'], env);
      expect(r.code, r.stderr).to.equal(0);
      const printed = JSON.parse(r.stdout) as BrokerConfig;
      expect(printed.nodeId, 'the node id is the pod name: stable across restarts').to.equal(`${set.metadata.name}-${ordinal}`);
      expect(printed.host).to.equal('0.0.0.0');
    }
  });

  it('declares as container ports exactly what the node opens: STOMP, WebSocket and ops', () => {
    const c = config();
    expect(c.opsPort, 'an ops listener for the probes').to.be.greaterThan(0);
    expect(container.ports?.map((p) => p.containerPort)).to.have.members([c.port, c.wsPort, c.opsPort]);
  });

  it('probes the ops port: liveness /healthz, readiness /readyz (the startup probe, if any, /healthz)', () => {
    const c = config();
    expect(container.livenessProbe?.httpGet?.path).to.equal('/healthz');
    expect(containerPort(container.livenessProbe?.httpGet?.port)).to.equal(c.opsPort);
    expect(container.readinessProbe?.httpGet?.path).to.equal('/readyz');
    expect(containerPort(container.readinessProbe?.httpGet?.port)).to.equal(c.opsPort);
    if (container.startupProbe !== undefined) {
      expect(container.startupProbe.httpGet?.path).to.equal('/healthz');
      expect(containerPort(container.startupProbe.httpGet?.port)).to.equal(c.opsPort);
    }
  });

  it('probes paths a live node answers 200 on its ops port', async () => {
    const b = await startBroker({ opsPort: 0 });
    try {
      const port = b.addresses.ops?.port as number;
      const paths = [container.livenessProbe, container.readinessProbe, container.startupProbe].map((p) => p?.httpGet?.path);
      for (const path of paths.filter((p) => p !== undefined)) expect((await http(port, path)).status, path).to.equal(200);
    } finally {
      await b.close();
    }
  });

  it('notices the drain before it ends, and gives the pod time for the drain and the close; no preStop sleep', () => {
    const c = config();
    const readiness = container.readinessProbe as Probe;
    // Worst case from SIGTERM to "not ready": a full period per allowed failure, plus one probe's timeout.
    const noticeMs = ((readiness.periodSeconds ?? 10) * (readiness.failureThreshold ?? 3) + (readiness.timeoutSeconds ?? 1)) * 1000;
    expect(noticeMs, `readiness notices a draining node within shutdownDrainMs (${c.shutdownDrainMs})`).to.be.below(c.shutdownDrainMs);
    const graceMs = (pod?.spec?.terminationGracePeriodSeconds ?? 30) * 1000;
    expect(graceMs).to.be.greaterThan(c.shutdownDrainMs + c.closeTimeoutMs);
    expect(container.lifecycle?.preStop, 'the drain is built in').to.equal(undefined);
  });

  it('serves clients through a Service without session affinity, on the STOMP and WebSocket ports', () => {
    const c = config();
    const clients = ofKind('Service').filter((s) => s.spec?.clusterIP !== 'None');
    expect(clients).to.have.length(1);
    const svc = clients[0] as Manifest;
    expect(selects(svc.spec?.selector, podLabels)).to.equal(true);
    expect(svc.spec?.sessionAffinity ?? 'None').to.equal('None');
    expect(svc.spec?.ports?.map((p) => containerPort(p.targetPort ?? p.port))).to.have.members([c.port, c.wsPort]);
  });

  it("has the StatefulSet's headless Service, reaching each node's ops port", () => {
    const c = config();
    const headless = ofKind('Service').find((s) => s.metadata.name === set.spec?.serviceName);
    expect(headless, `Service ${String(set.spec?.serviceName)}`).to.not.equal(undefined);
    expect(headless?.spec?.clusterIP).to.equal('None');
    expect(selects(headless?.spec?.selector, podLabels)).to.equal(true);
    expect(headless?.spec?.ports?.map((p) => containerPort(p.targetPort ?? p.port))).to.include(c.opsPort);
  });

  it('lets voluntary disruptions take at most one node at a time (PodDisruptionBudget)', () => {
    const pdb = one('PodDisruptionBudget');
    expect(selects(pdb.spec?.selector?.matchLabels, podLabels)).to.equal(true);
    const down = pdb.spec?.maxUnavailable ?? (set.spec?.replicas ?? 0) - Number(pdb.spec?.minAvailable ?? 0);
    expect(down).to.equal(1);
  });
});
