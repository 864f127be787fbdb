/**
 * Unit tests of the sidebar's model (src/model.ts), run by Node's own test runner on the compiled
 * JavaScript (`npm test`). The server is a table of answers per route, and every request is
 * recorded, so the tests check what the model asks for as well as what it keeps.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SidebarModel, findSelection, selectionKey, shortMetrics } from '../src/model';
import { IDeployment, IModelVersion, Selection } from '../src/tokens';

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

/** A server answering `routes[endPoint]`, recording each request; an Error answer is thrown. */
function server(routes: { [endPoint: string]: unknown }): { requests: string[]; request: <T>(e: string) => Promise<T> } {
  const requests: string[] = [];
  const request = async <T>(endPoint: string): Promise<T> => {
    requests.push(endPoint);
    const answer = routes[endPoint];
    if (answer instanceof Error) {
      throw answer;
    }
    if (answer === undefined) {
      throw new Error(`no route ${endPoint}`);
    }
    return structuredClone(answer) as T;
  };
  return { requests, request };
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
