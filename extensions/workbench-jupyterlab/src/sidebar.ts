import { refreshIcon } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { errorMessage, requestAPI } from './handler';
import { IDeployment, IExperiment, IModelVersion, IRegisteredModel, IRun, Selection } from './tokens';

/** How often the sidebar refreshes while it is visible. */
const POLL_INTERVAL_MS = 4000;

/** Runs shown per expanded experiment. */
const RUNS_SHOWN = 20;

/** What every section shows until the first answer arrives. */
const LOADING = 'Loading… (a new workspace takes a few seconds to create its store)';

/** Badge text of a deployment's policy verdict and alert state. */
const POLICY_TEXT: { [verdict: string]: string } = {
  passes: 'policy ✓',
  advisory: 'policy: advice',
  blocked: 'policy: blocked',
  unknown: 'policy ?'
};
const ALERT_TEXT: { [state: string]: string } = {
  ok: 'no drift',
  drift: 'drift',
  performance: 'accuracy down',
  'drift and performance': 'drift, accuracy down',
  'no data': 'no data yet',
  unknown: 'drift ?'
};

interface IState {
  experiments: IExperiment[];
  runs: { [experiment: string]: IRun[] };
  models: IRegisteredModel[];
  versions: { [model: string]: IModelVersion[] };
  deployments: IDeployment[];
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text) {
    node.textContent = text;
  }
  return node;
}

function shortMetrics(metrics: { [key: string]: number }): string {
  return Object.keys(metrics)
    .sort()
    .slice(0, 2)
    .map(key => `${key} ${Number(metrics[key]).toFixed(3)}`)
    .join(', ');
}

/**
 * The "Workbench" sidebar: experiments and their runs, registered models with versions and
 * aliases, and deployments with live health. It polls the server while it is visible, so what
 * changes in a notebook or the CLI shows up without a page reload.
 */
export class WorkbenchSidebar extends Widget {
  constructor() {
    super();
    this.id = 'workbench-sidebar';
    this.addClass('wb-Sidebar');
    this.title.caption = 'Workbench';

    const header = el('div', 'wb-Sidebar-header');
    header.appendChild(el('h2', 'wb-Sidebar-title', 'Workbench'));
    const refresh = el('button', 'jp-Button jp-mod-minimal wb-Sidebar-refresh');
    refresh.title = 'Refresh';
    refresh.appendChild(refreshIcon.element({ tag: 'span' }));
    refresh.addEventListener('click', () => void this._poll.refresh());
    header.appendChild(refresh);
    this.node.appendChild(header);

    this._error = el('div', 'wb-Sidebar-error');
    this.node.appendChild(this._error);
    this._experiments = this._section('Experiments', 'wb-Experiments');
    this._models = this._section('Models', 'wb-Models');
    this._deployments = this._section('Deployments', 'wb-Deployments');
    // Until the first answer: a new workspace's store takes seconds to create, so say so.
    this._showInSections('wb-Loading', LOADING);

    // Right-clicking a row selects it first, so its context-menu commands act on that row.
    this.node.addEventListener('mousedown', event => this._select(event.target as HTMLElement));

    this._poll = new Poll({
      factory: () => this.refresh(),
      frequency: { interval: POLL_INTERVAL_MS, backoff: true, max: 60 * 1000 },
      name: 'workbench:sidebar',
      standby: () => !this.isVisible || 'when-hidden'
    });
  }

  /** Emitted when the selection changes (commands refresh their enabled state). */
  get selectionChanged(): ISignal<this, Selection> {
    return this._selectionChanged;
  }

  /** The selected model version or deployment, if any. */
  get selection(): Selection {
    return this._selection;
  }

  /** Emitted when a row is double-clicked: a version opens its review, a deployment its drift. */
  get opened(): ISignal<this, Selection> {
    return this._opened;
  }

  /** Fetch everything shown and redraw what changed. */
  async refresh(): Promise<void> {
    try {
      const [experiments, models, deployments] = await Promise.all([
        requestAPI<IExperiment[]>('experiments'),
        requestAPI<IRegisteredModel[]>('models'),
        requestAPI<IDeployment[]>('deployments')
      ]);
      const state: IState = { experiments, models, deployments, runs: {}, versions: {} };
      const names = new Set(models.map(m => m.name));
      await Promise.all([
        ...[...this._openModels]
          .filter(name => names.has(name))
          .map(async name => {
            state.versions[name] = await requestAPI<IModelVersion[]>(
              `models/${encodeURIComponent(name)}/versions`
            );
          }),
        ...[...this._openExperiments]
          .filter(name => experiments.some(e => e.name === name))
          .map(async name => {
            state.runs[name] = await requestAPI<IRun[]>(
              `runs?experiment=${encodeURIComponent(name)}&max=${RUNS_SHOWN}`
            );
          })
      ]);
      this._error.textContent = '';
      this._loaded = true;
      this._render(state);
    } catch (error) {
      const message = errorMessage(error);
      this._error.textContent = message;
      if (!this._loaded) {
        // Nothing was ever shown: each section says why instead of staying empty.
        this._showInSections('wb-Failed', 'Could not load: see the message above');
        this._lastRender = '';
      }
      throw error; // the poll backs off while the server refuses
    }
  }

  /** One row with `text` in every section (loading, or the reason nothing could be loaded). */
  private _showInSections(className: string, text: string): void {
    for (const list of [this._experiments, this._models, this._deployments]) {
      list.replaceChildren(el('li', `wb-Empty ${className}`, text));
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this._poll.refresh();
  }

  private _section(title: string, className: string): HTMLUListElement {
    const section = el('section', `wb-Section ${className}`);
    section.appendChild(el('h3', 'wb-Section-title', title));
    const list = el('ul', 'wb-List');
    section.appendChild(list);
    this.node.appendChild(section);
    return list;
  }

  private _render(state: IState): void {
    // Redraw only when something changed, so a poll never disturbs what the user is doing.
    const key = JSON.stringify([state, [...this._openModels], [...this._openExperiments]]);
    if (key === this._lastRender) {
      return;
    }
    this._lastRender = key;
    this._state = state;
    this._renderExperiments(state);
    this._renderModels(state);
    this._renderDeployments(state);
    this._reselect();
  }

  private _toggle(open: Set<string>, name: string): void {
    if (open.has(name)) {
      open.delete(name);
    } else {
      open.add(name);
    }
    void this._poll.refresh();
  }

  private _renderExperiments(state: IState): void {
    const list = this._experiments;
    list.replaceChildren();
    if (state.experiments.length === 0) {
      list.appendChild(el('li', 'wb-Empty', 'No experiments yet'));
    }
    for (const experiment of state.experiments) {
      const open = this._openExperiments.has(experiment.name);
      const item = el('li', 'wb-Experiment wb-Row');
      item.dataset.experiment = experiment.name;
      item.appendChild(el('span', `wb-Caret${open ? ' wb-mod-open' : ''}`));
      item.appendChild(el('span', 'wb-Name', experiment.name));
      item.addEventListener('click', () => this._toggle(this._openExperiments, experiment.name));
      list.appendChild(item);
      if (!open) {
        continue;
      }
      const runs = el('ul', 'wb-List wb-Nested');
      for (const run of state.runs[experiment.name] ?? []) {
        const row = el('li', 'wb-Run wb-Row');
        row.dataset.run = run.run_id;
        row.title = `${run.run_id}\n${run.user} · ${run.start_time ?? ''}`;
        row.appendChild(el('span', 'wb-Name', run.name || run.run_id.slice(0, 8)));
        row.appendChild(el('span', `wb-Status wb-Status-${run.status.toLowerCase()}`, run.status));
        const metrics = shortMetrics(run.metrics);
        if (metrics) {
          row.appendChild(el('span', 'wb-Sub', metrics));
        }
        runs.appendChild(row);
      }
      if ((state.runs[experiment.name] ?? []).length === 0) {
        runs.appendChild(el('li', 'wb-Empty', 'No runs'));
      }
      list.appendChild(runs);
    }
  }

  private _renderModels(state: IState): void {
    const list = this._models;
    list.replaceChildren();
    if (state.models.length === 0) {
      list.appendChild(el('li', 'wb-Empty', 'No registered models yet'));
    }
    for (const model of state.models) {
      const open = this._openModels.has(model.name);
      const item = el('li', 'wb-Model wb-Row');
      item.dataset.model = model.name;
      item.appendChild(el('span', `wb-Caret${open ? ' wb-mod-open' : ''}`));
      item.appendChild(el('span', 'wb-Name', model.name));
      item.title = model.latest_version ? `${model.name}: latest version ${model.latest_version}` : model.name;
      for (const alias of Object.keys(model.aliases).sort()) {
        item.appendChild(el('span', 'wb-Badge', `@${alias} v${model.aliases[alias]}`));
      }
      item.addEventListener('click', () => this._toggle(this._openModels, model.name));
      list.appendChild(item);
      if (!open) {
        continue;
      }
      const versions = el('ul', 'wb-List wb-Nested');
      for (const version of state.versions[model.name] ?? []) {
        const row = el('li', 'wb-Version wb-Row wb-Selectable');
        row.dataset.model = version.name;
        row.dataset.version = version.version;
        row.title = `${version.uri}\nregistered by ${version.user} · ${version.created}`;
        row.appendChild(el('span', 'wb-Name', `v${version.version}`));
        for (const alias of version.aliases) {
          row.appendChild(el('span', 'wb-Badge', `@${alias}`));
        }
        row.appendChild(el('span', 'wb-Detail', version.status));
        const where = version.deployments ?? [];
        row.dataset.deployed = String(where.length);
        row.appendChild(
          el('span', 'wb-Sub wb-Where', where.length ? `deployed: ${where.join(', ')}` : 'not deployed')
        );
        row.addEventListener('dblclick', () =>
          this._opened.emit({ kind: 'version', version })
        );
        versions.appendChild(row);
      }
      list.appendChild(versions);
    }
  }

  private _renderDeployments(state: IState): void {
    const list = this._deployments;
    list.replaceChildren();
    if (state.deployments.length === 0) {
      list.appendChild(el('li', 'wb-Empty', 'No deployments'));
    }
    for (const deployment of state.deployments) {
      const health = deployment.health;
      const row = el('li', `wb-Deployment wb-Row wb-Selectable wb-mod-${health}`);
      row.dataset.deployment = deployment.name;
      row.dataset.health = health;
      row.dataset.policy = deployment.policy;
      row.dataset.alerts = deployment.alerts;
      row.title = `${deployment.url}\n${deployment.detail}`;
      row.appendChild(el('span', 'wb-HealthDot'));
      row.appendChild(el('span', 'wb-Name', deployment.name));
      row.appendChild(el('span', 'wb-Health', health));
      const policy = el('span', `wb-Badge wb-Policy wb-Policy-${deployment.policy}`, POLICY_TEXT[deployment.policy]);
      policy.title = deployment.policy_detail;
      row.appendChild(policy);
      const alerts = el(
        'span',
        `wb-Badge wb-Alerts wb-Alerts-${deployment.alerts.replace(/ /g, '-')}`,
        ALERT_TEXT[deployment.alerts]
      );
      alerts.title = deployment.alerts_detail;
      row.appendChild(alerts);
      row.appendChild(
        el('span', 'wb-Sub', `${deployment.model_name} v${deployment.model_version ?? '?'} on ${deployment.target}`)
      );
      row.addEventListener('dblclick', () => this._opened.emit({ kind: 'deployment', deployment }));
      list.appendChild(row);
    }
  }

  /** Select the row under `target` (a version or a deployment), if any. */
  private _select(target: HTMLElement): void {
    const row = target.closest<HTMLElement>('.wb-Selectable');
    if (!row) {
      return;
    }
    this._selectedKey = row.dataset.deployment
      ? `deployment:${row.dataset.deployment}`
      : `version:${row.dataset.model}/${row.dataset.version}`;
    this._reselect();
  }

  /** Mark the selected row and keep the selection's data current after a redraw. */
  private _reselect(): void {
    let selection: Selection = null;
    for (const row of Array.from(this.node.querySelectorAll<HTMLElement>('.wb-Selectable'))) {
      const key = row.dataset.deployment
        ? `deployment:${row.dataset.deployment}`
        : `version:${row.dataset.model}/${row.dataset.version}`;
      const selected = key === this._selectedKey;
      row.classList.toggle('jp-mod-selected', selected);
      if (selected) {
        selection = this._selectionFor(row);
      }
    }
    if (JSON.stringify(selection) !== JSON.stringify(this._selection)) {
      this._selection = selection;
      this._selectionChanged.emit(selection);
    }
  }

  private _selectionFor(row: HTMLElement): Selection {
    if (row.dataset.deployment) {
      const deployment = this._state.deployments.find(d => d.name === row.dataset.deployment);
      return deployment ? { kind: 'deployment', deployment } : null;
    }
    const version = (this._state.versions[row.dataset.model ?? ''] ?? []).find(
      v => v.version === row.dataset.version
    );
    return version ? { kind: 'version', version } : null;
  }

  private _error: HTMLDivElement;
  private _experiments: HTMLUListElement;
  private _models: HTMLUListElement;
  private _deployments: HTMLUListElement;
  private _poll: Poll;
  private _state: IState = { experiments: [], runs: {}, models: [], versions: {}, deployments: [] };
  private _lastRender = '';
  private _loaded = false;
  private _openModels = new Set<string>();
  private _openExperiments = new Set<string>();
  private _selectedKey = '';
  private _selection: Selection = null;
  private _selectionChanged = new Signal<this, Selection>(this);
  private _opened = new Signal<this, Selection>(this);
}
