import { ISignal, Signal } from '@lumino/signaling';

import {
  IAliasRequest,
  IDeployment,
  IDeployRequest,
  IExperiment,
  IModelVersion,
  IRegisteredModel,
  IRun,
  ISnippet,
  ITarget,
  Selection,
  SnippetSubject
} from './tokens';

/**
 * The sidebar's data and the Workbench's actions, apart from the views (as jupyterlab-git keeps its
 * model apart from its views): what the server last answered, which experiments and models are
 * expanded, the selected row, and the calls that change something (deploy, stop, roll back, set an
 * alias), each followed by a refresh so the sidebar shows the outcome. It knows no DOM: the view
 * draws `state` when `changed` fires and reports clicks back; the commands call the actions.
 */

/** Runs shown per expanded experiment. */
export const RUNS_SHOWN = 20;

/** Badge text of a deployment's policy verdict and alert state. */
export const POLICY_TEXT: { [verdict: string]: string } = {
  passes: 'policy ✓',
  advisory: 'policy: advice',
  blocked: 'policy: blocked',
  unknown: 'policy ?'
};
export const ALERT_TEXT: { [state: string]: string } = {
  ok: 'no drift',
  drift: 'drift',
  performance: 'accuracy down',
  'drift and performance': 'drift, accuracy down',
  'no data': 'no data yet',
  unknown: 'drift ?'
};

/** Everything the sidebar shows. */
export interface ISidebarState {
  experiments: IExperiment[];
  runs: { [experiment: string]: IRun[] };
  models: IRegisteredModel[];
  versions: { [model: string]: IModelVersion[] };
  deployments: IDeployment[];
  /** True on the first look while the deployments' live state (health, drift) is still being read. */
  deploymentsPending?: boolean;
}

/** Calls a Workbench route and returns its JSON (`requestAPI` in the Lab; a stand-in in tests). */
export type Request = <T>(endPoint: string, init?: RequestInit) => Promise<T>;

/** A JSON request body for a `Request`. */
export function jsonBody(method: string, body: unknown): RequestInit {
  return { method, body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } };
}

/** The query of `GET snippet` for what the snippet loads. */
export function snippetQuery(subject: SnippetSubject): string {
  if ('deployment' in subject) {
    return `deployment=${encodeURIComponent(subject.deployment)}`;
  }
  const pin = subject.alias
    ? `alias=${encodeURIComponent(subject.alias)}`
    : `version=${encodeURIComponent(subject.version ?? '')}`;
  return `model=${encodeURIComponent(subject.model)}&${pin}`;
}

/** What a selectable row names: a deployment, or a model version. */
export interface IRowKey {
  deployment?: string;
  model?: string;
  version?: string;
}

/** The first two metrics of a run, by name, for its row (`accuracy 0.912, f1 0.880`). */
export function shortMetrics(metrics: { [key: string]: number }): string {
  return Object.keys(metrics)
    .sort()
    .slice(0, 2)
    .map(key => `${key} ${Number(metrics[key]).toFixed(3)}`)
    .join(', ');
}

/** The key that identifies a selectable row across redraws. */
export function selectionKey(row: IRowKey): string {
  return row.deployment ? `deployment:${row.deployment}` : `version:${row.model}/${row.version}`;
}

/** The deployment or version `key` names in `state`, or null when it is not shown. */
export function findSelection(state: ISidebarState, key: string): Selection {
  if (key.startsWith('deployment:')) {
    const name = key.slice('deployment:'.length);
    const deployment = state.deployments.find(d => d.name === name);
    return deployment ? { kind: 'deployment', deployment } : null;
  }
  if (key.startsWith('version:')) {
    const rest = key.slice('version:'.length);
    const slash = rest.lastIndexOf('/');
    const [model, number] = [rest.slice(0, slash), rest.slice(slash + 1)];
    const version = (state.versions[model] ?? []).find(v => v.version === number);
    return version ? { kind: 'version', version } : null;
  }
  return null;
}

const EMPTY: ISidebarState = { experiments: [], runs: {}, models: [], versions: {}, deployments: [] };

/** The sidebar's model: fetches, remembers what is expanded and selected, says what changed, and
 * carries out the actions. */
export class SidebarModel {
  constructor(request: Request) {
    this._request = request;
  }

  /** What the server last answered (empty until the first refresh). */
  get state(): ISidebarState {
    return this._state;
  }

  /** True once a refresh has succeeded. */
  get loaded(): boolean {
    return this._loaded;
  }

  /** Emitted when what is shown changed (a refresh with new data, or a row expanded or collapsed). */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The selected model version or deployment, if it is shown. */
  get selection(): Selection {
    return this._selection;
  }

  /** The key of the selected row (see `selectionKey`), or '' for none. */
  get selectedKey(): string {
    return this._selectedKey;
  }

  /** Emitted when the selection changes (commands refresh their enabled state). */
  get selectionChanged(): ISignal<this, Selection> {
    return this._selectionChanged;
  }

  /** Whether the experiment's runs are shown. */
  isExperimentOpen(name: string): boolean {
    return this._openExperiments.has(name);
  }

  /** Whether the model's versions are shown. */
  isModelOpen(name: string): boolean {
    return this._openModels.has(name);
  }

  /** Show or hide an experiment's runs (fetched at the next refresh). */
  toggleExperiment(name: string): void {
    toggle(this._openExperiments, name);
  }

  /** Show or hide a model's versions (fetched at the next refresh). */
  toggleModel(name: string): void {
    toggle(this._openModels, name);
  }

  /** Select the row with `key` (see `selectionKey`). */
  select(key: string): void {
    this._selectedKey = key;
    this._updateSelection();
  }

  /**
   * Fetch everything shown: experiments, models and deployments, with the runs of each expanded
   * experiment and the versions of each expanded model. `changed` fires only when something differs,
   * so a poll never disturbs what the user is doing. A failed call throws (the poll backs off).
   */
  async refresh(): Promise<void> {
    const request = this._request;
    // Refreshes overlap (a poll, an action's): an answer older than the one shown is dropped.
    const ticket = ++this._asked;
    try {
      // The deployments' live state (health, policy, drift) is the slow answer: on the first look,
      // experiments and models are drawn as soon as they arrive, and the deployments follow.
      const asked = request<IDeployment[]>('deployments');
      let answered = false;
      asked.then(
        () => (answered = true),
        () => undefined // awaited below; an early failure elsewhere must not leave it unhandled
      );
      const [experiments, models] = await Promise.all([
        request<IExperiment[]>('experiments'),
        request<IRegisteredModel[]>('models')
      ]);
      if (!this._loaded && !answered && ticket > this._shown) {
        this._state = { experiments, models, deployments: [], runs: {}, versions: {}, deploymentsPending: true };
        this._changed.emit();
      }
      const deployments = await asked;
      const state: ISidebarState = { experiments, models, deployments, runs: {}, versions: {} };
      const names = new Set(models.map(m => m.name));
      await Promise.all([
        ...[...this._openModels]
          .filter(name => names.has(name))
          .map(async name => {
            state.versions[name] = await request<IModelVersion[]>(`models/${encodeURIComponent(name)}/versions`);
          }),
        ...[...this._openExperiments]
          .filter(name => experiments.some(e => e.name === name))
          .map(async name => {
            state.runs[name] = await request<IRun[]>(
              `runs?experiment=${encodeURIComponent(name)}&max=${RUNS_SHOWN}`
            );
          })
      ]);
      if (ticket < this._shown) {
        return;
      }
      this._shown = ticket;
      this._loaded = true;
      const key = JSON.stringify([state, [...this._openModels], [...this._openExperiments]]);
      if (key === this._lastKey) {
        return;
      }
      this._lastKey = key;
      this._state = state;
      this._changed.emit();
      this._updateSelection();
    } catch (error) {
      if (!this._loaded) {
        this._lastKey = ''; // the view shows the failure instead: the first answer must be drawn
      }
      throw error;
    }
  }

  // -- actions ---------------------------------------------------------------------------------

  /** The deployment targets installed on the server (`GET targets`), asked for once and kept (a
   * failed answer is asked for again next time). */
  targets(): Promise<ITarget[]> {
    if (!this._targets) {
      const asked = this._request<ITarget[]>('targets');
      this._targets = asked;
      asked.catch(() => {
        if (this._targets === asked) {
          this._targets = null;
        }
      });
    }
    return this._targets;
  }

  /**
   * Serve a model version on a target (`POST deployments`); resolves with the deployment once it is
   * ready, or rejects with the server's reason. The sidebar refreshes as the deploy starts (the new
   * deployment shows as starting) and again when it ends, whatever the outcome.
   */
  async deploy(request: IDeployRequest): Promise<IDeployment> {
    const deploying = this._request<IDeployment>('deployments', jsonBody('POST', request));
    void this._refreshQuietly();
    return this._thenRefresh(deploying);
  }

  /** Stop a deployment (`DELETE deployments/NAME`); its prediction log and history are kept. */
  async stop(name: string): Promise<void> {
    await this._thenRefresh(this._request<unknown>(`deployments/${encodeURIComponent(name)}`, { method: 'DELETE' }));
  }

  /** Serve again what a deployment served before its last change (`POST deployments/NAME/rollback`). */
  rollback(name: string): Promise<IDeployment> {
    return this._thenRefresh(
      this._request<IDeployment>(`deployments/${encodeURIComponent(name)}/rollback`, { method: 'POST' })
    );
  }

  /** Point `alias` of a registered model at `version` (`PUT models/NAME/aliases/ALIAS`). */
  setAlias(model: string, alias: string, version: string): Promise<IModelVersion> {
    const body: IAliasRequest = { version };
    return this._thenRefresh(
      this._request<IModelVersion>(
        `models/${encodeURIComponent(model)}/aliases/${encodeURIComponent(alias)}`,
        jsonBody('PUT', body)
      )
    );
  }

  /** Code for a notebook cell that loads a model version or gets a deployment (`GET snippet`). */
  snippet(subject: SnippetSubject): Promise<ISnippet> {
    return this._request<ISnippet>(`snippet?${snippetQuery(subject)}`);
  }

  /** `call`'s outcome, after a refresh that shows it (a failed refresh is the poll's to report). */
  private async _thenRefresh<T>(call: Promise<T>): Promise<T> {
    try {
      return await call;
    } finally {
      await this._refreshQuietly();
    }
  }

  private async _refreshQuietly(): Promise<void> {
    try {
      await this.refresh();
    } catch {
      // the sidebar's poll shows why, and backs off
    }
  }

  private _updateSelection(): void {
    const selection = this._selectedKey ? findSelection(this._state, this._selectedKey) : null;
    if (JSON.stringify(selection) !== JSON.stringify(this._selection)) {
      this._selection = selection;
      this._selectionChanged.emit(selection);
    }
  }

  private _request: Request;
  private _state: ISidebarState = EMPTY;
  private _lastKey = '';
  private _loaded = false;
  private _openModels = new Set<string>();
  private _openExperiments = new Set<string>();
  private _selectedKey = '';
  private _asked = 0;
  private _shown = 0;
  private _targets: Promise<ITarget[]> | null = null;
  private _selection: Selection = null;
  private _changed = new Signal<this, void>(this);
  private _selectionChanged = new Signal<this, Selection>(this);
}

function toggle(open: Set<string>, name: string): void {
  if (open.has(name)) {
    open.delete(name);
  } else {
    open.add(name);
  }
}
