/**
 * Unit tests of the sidebar's model (src/model.ts), run by Node's own test runner on the compiled
 * JavaScript (`npm test`). The server is a table of answers per route, and every request is
 * recorded, so the tests check what the model asks for (and, for actions, with which method and
 * body) as well as what it keeps.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SidebarModel, findSelection, selectionKey, shortMetrics, snippetQuery } from '../src/model';
import { IDeployment, IModelVersion, ITarget, Selection } from '../src/tokens';

const version = (name: string, number: string): IModelVersion => ({
  name,
  version: number,
  uri: `models:/${name}/${number}`,
  source: '',
  run_id: null,
  status: 'READY',
  aliases: [],
  created: '2026-01-01',
  user: 'dana',
  git_commit: null,
  data_hash: null,
  description: '',
  tags: {},
  deployments: []
});

const deployment = (name: string): IDeployment =>
  ({ name, health: 'healthy', policy: 'passes', alerts: 'ok', model_name: 'churn' }) as unknown as IDeployment;

/** One request the model made: `METHOD endPoint`, and its JSON body if any. */
interface ICall {
  call: string;
  body?: unknown;
}

/**
 * A server answering `routes[endPoint]` (or `routes['METHOD endPoint']` for other verbs than GET),
 * recording each request; an Error answer is thrown, a function's answer is awaited.
 */
function server(routes: { [endPoint: string]: unknown }): {
  requests: string[];
  calls: ICall[];
  request: <T>(e: string, init?: RequestInit) => Promise<T>;
} {
  const requests: string[] = [];
  const calls: ICall[] = [];
  const request = async <T>(endPoint: string, init?: RequestInit): Promise<T> => {
    const method = init?.method ?? 'GET';
    const key = method === 'GET' ? endPoint : `${method} ${endPoint}`;
    requests.push(key);
    calls.push(init?.body ? { call: `${method} ${endPoint}`, body: JSON.parse(String(init.body)) } : { call: `${method} ${endPoint}` });
    let answer = routes[key];
    if (typeof answer === 'function') {
      answer = await (answer as () => Promise<unknown>)();
    }
    if (answer instanceof Error) {
      throw answer;
    }
    if (answer === undefined) {
      throw new Error(`no route ${endPoint}`);
    }
    return structuredClone(answer) as T;
  };
  return { requests, calls, request };
}

const ROUTES = {
  experiments: [{ experiment_id: '1', name: 'churn exp', lifecycle_stage: 'active' }],
  models: [{ name: 'churn', description: '', latest_version: '2', aliases: { champion: '1' }, created: '', updated: '', tags: {} }],
  deployments: [deployment('churn-live')],
  'models/churn/versions': [version('churn', '2'), version('churn', '1')],
  'runs?experiment=churn%20exp&max=20': []
};

test('shortMetrics shows the first two metrics by name with three decimals', () => {
  assert.equal(shortMetrics({ f1: 0.88, accuracy: 0.9123, loss: 0.3 }), 'accuracy 0.912, f1 0.880');
  assert.equal(shortMetrics({}), '');
});

test('a row key names a deployment or a model version, and finds it back in the state', () => {
  const state = { experiments: [], runs: {}, models: [], versions: { 'a/b': [version('a/b', '3')] }, deployments: [deployment('web')] };
  assert.equal(selectionKey({ deployment: 'web' }), 'deployment:web');
  assert.equal(selectionKey({ model: 'a/b', version: '3' }), 'version:a/b/3');
  assert.equal((findSelection(state, 'deployment:web') as { deployment: IDeployment }).deployment.name, 'web');
  const found = findSelection(state, selectionKey({ model: 'a/b', version: '3' }));
  assert.equal(found?.kind === 'version' && found.version.uri, 'models:/a/b/3');
  assert.equal(findSelection(state, 'deployment:gone'), null);
  assert.equal(findSelection(state, 'version:a/b/9'), null);
});

test('a refresh fetches the three lists, and versions and runs only of what is expanded', async () => {
  const { requests, request } = server(ROUTES);
  const model = new SidebarModel(request);
  let changes = 0;
  model.changed.connect(() => changes++);
  await model.refresh();
  assert.deepEqual(requests.sort(), ['deployments', 'experiments', 'models']);
  assert.equal(model.loaded, true);
  assert.equal(changes, 1);
  assert.deepEqual(model.state.versions, {});

  requests.length = 0;
  model.toggleModel('churn');
  model.toggleExperiment('churn exp');
  assert.equal(model.isModelOpen('churn') && model.isExperimentOpen('churn exp'), true);
  await model.refresh();
  assert.deepEqual(requests.sort(), [
    'deployments',
    'experiments',
    'models',
    'models/churn/versions',
    'runs?experiment=churn%20exp&max=20'
  ]);
  assert.deepEqual(model.state.versions.churn.map(v => v.version), ['2', '1']);
  assert.equal(changes, 2);
});

test('the first look shows experiments and models while the deployments are still being read', async () => {
  let answer: (value: IDeployment[]) => void = () => undefined;
  const slow = new Promise<IDeployment[]>(resolve => (answer = resolve));
  const model = new SidebarModel(server({ ...ROUTES, deployments: () => slow }).request);
  const states: { experiments: number; models: number; deployments: number; pending: boolean }[] = [];
  model.changed.connect(() =>
    states.push({
      experiments: model.state.experiments.length,
      models: model.state.models.length,
      deployments: model.state.deployments.length,
      pending: model.state.deploymentsPending === true
    })
  );
  const refreshed = model.refresh();
  await new Promise(resolve => setTimeout(resolve, 20));
  assert.deepEqual(states, [{ experiments: 1, models: 1, deployments: 0, pending: true }]);
  assert.equal(model.loaded, false);
  answer([deployment('churn-live')]);
  await refreshed;
  assert.deepEqual(states[1], { experiments: 1, models: 1, deployments: 1, pending: false });
  assert.equal(model.loaded, true);
});

test('a refresh that brings nothing new does not signal a change', async () => {
  const model = new SidebarModel(server(ROUTES).request);
  let changes = 0;
  model.changed.connect(() => changes++);
  await model.refresh();
  await model.refresh();
  assert.equal(changes, 1);
});

test('the selection follows the data: it disappears when its model is collapsed', async () => {
  const model = new SidebarModel(server(ROUTES).request);
  const seen: Selection[] = [];
  model.selectionChanged.connect((_, selection) => seen.push(selection));
  model.toggleModel('churn');
  await model.refresh();
  model.select(selectionKey({ model: 'churn', version: '1' }));
  assert.equal(model.selection?.kind === 'version' && model.selection.version.uri, 'models:/churn/1');
  model.select(selectionKey({ deployment: 'churn-live' }));
  assert.equal(model.selection?.kind, 'deployment');
  model.select(selectionKey({ model: 'churn', version: '2' }));
  model.toggleModel('churn');
  await model.refresh();
  assert.equal(model.selection, null);
  assert.deepEqual(seen.map(s => s?.kind ?? null), ['version', 'deployment', 'version', null]);
});

test('a failed first refresh throws and the next answer is still shown', async () => {
  const routes: { [endPoint: string]: unknown } = { ...ROUTES, models: new Error('the store is being created') };
  const model = new SidebarModel(server(routes).request);
  let changes = 0;
  model.changed.connect(() => changes++);
  await assert.rejects(model.refresh(), /the store is being created/);
  assert.equal(model.loaded, false);
  assert.equal(changes, 0);
  routes.models = ROUTES.models;
  await model.refresh();
  assert.equal(model.loaded, true);
  assert.equal(changes, 1);
  assert.deepEqual(model.state.models.map(m => m.name), ['churn']);
});

const TARGETS: ITarget[] = [
  { name: 'docker', uri: 'docker', summary: 'containers', description: '', options: [], cluster: false, help: 'docker: containers' },
  { name: 'local', uri: 'local', summary: 'processes', description: '', options: [], cluster: false, help: 'local: processes' }
];

test('the targets are what the server lists, asked for once; a failed answer is asked again', async () => {
  const routes: { [endPoint: string]: unknown } = { ...ROUTES, targets: new Error('the server is starting') };
  const { requests, request } = server(routes);
  const model = new SidebarModel(request);
  await assert.rejects(model.targets(), /the server is starting/);
  routes.targets = TARGETS;
  assert.deepEqual((await model.targets()).map(t => t.name), ['docker', 'local']);
  assert.deepEqual((await model.targets()).map(t => t.summary), ['containers', 'processes']);
  assert.deepEqual(requests, ['targets', 'targets']);
});

test('deploy posts the request, and the sidebar shows the deployment as it starts and once it is up', async () => {
  const routes: { [endPoint: string]: unknown } = { ...ROUTES };
  let answerDeploy: (d: IDeployment) => void = () => undefined;
  routes['POST deployments'] = () => new Promise<IDeployment>(resolve => (answerDeploy = resolve));
  const { calls, request } = server(routes);
  const model = new SidebarModel(request);
  await model.refresh();
  const starting = { ...deployment('churn-new'), health: 'starting' } as IDeployment;
  routes.deployments = [deployment('churn-live'), starting];
  const deploying = model.deploy({ model_uri: 'models:/churn/2', target: 'docker', name: 'churn-new' });
  await new Promise(resolve => setTimeout(resolve, 0));
  assert.deepEqual(calls.find(c => c.call === 'POST deployments'), {
    call: 'POST deployments',
    body: { model_uri: 'models:/churn/2', target: 'docker', name: 'churn-new' }
  });
  await waitFor(() => model.state.deployments.length === 2);
  assert.equal(model.state.deployments[1].health, 'starting');
  const up = deployment('churn-new');
  routes.deployments = [deployment('churn-live'), up];
  answerDeploy(up);
  assert.equal((await deploying).name, 'churn-new');
  assert.equal(model.state.deployments[1].health, 'healthy'); // refreshed before the deploy resolves
});

test('stop, roll back and set alias call their routes, and refresh even when refused', async () => {
  const routes: { [endPoint: string]: unknown } = {
    ...ROUTES,
    'DELETE deployments/churn%2Flive': { name: 'churn/live', stopped: true },
    'POST deployments/churn-live/rollback': new Error('churn-live has no earlier version to roll back to'),
    'PUT models/churn/aliases/champion': version('churn', '2')
  };
  const { calls, request } = server(routes);
  const model = new SidebarModel(request);
  let changes = 0;
  model.changed.connect(() => changes++);

  await model.stop('churn/live');
  assert.equal(changes, 1); // the refresh after the action brought the sidebar's first state
  await assert.rejects(model.rollback('churn-live'), /no earlier version/);
  assert.equal((await model.setAlias('churn', 'champion', '2')).version, '2');
  const actions = calls.filter(c => !c.call.startsWith('GET'));
  assert.deepEqual(actions, [
    { call: 'DELETE deployments/churn%2Flive' },
    { call: 'POST deployments/churn-live/rollback' },
    { call: 'PUT models/churn/aliases/champion', body: { version: '2' } }
  ]);
  // each action was followed by a refresh of the three lists
  assert.equal(calls.filter(c => c.call === 'GET deployments').length, 3);
});

test('a snippet asks for the model by alias, else by version, or for the deployment', async () => {
  assert.equal(snippetQuery({ model: 'churn model', alias: 'champion' }), 'model=churn%20model&alias=champion');
  assert.equal(snippetQuery({ model: 'churn', version: '3' }), 'model=churn&version=3');
  assert.equal(snippetQuery({ deployment: 'web/1' }), 'deployment=web%2F1');
  const { requests, request } = server({ 'snippet?deployment=web': { code: 'import workbench as wb' } });
  assert.equal((await new SidebarModel(request).snippet({ deployment: 'web' })).code, 'import workbench as wb');
  assert.deepEqual(requests, ['snippet?deployment=web']);
});

test('an older refresh that answers last does not replace what a newer one showed', async () => {
  const routes: { [endPoint: string]: unknown } = { ...ROUTES };
  let answerSlow: (d: IDeployment[]) => void = () => undefined;
  routes.deployments = () => new Promise<IDeployment[]>(resolve => (answerSlow = resolve));
  const model = new SidebarModel(server(routes).request);
  const slow = model.refresh();
  routes.deployments = [deployment('new')];
  await model.refresh();
  answerSlow([deployment('old')]);
  await slow;
  assert.deepEqual(model.state.deployments.map(d => d.name), ['new']);
});

/** Wait (a few event-loop turns) until `ready()` holds. */
async function waitFor(ready: () => boolean): Promise<void> {
  for (let turn = 0; turn < 50 && !ready(); turn++) {
    await new Promise(resolve => setTimeout(resolve, 0));
  }
  assert.ok(ready());
}
