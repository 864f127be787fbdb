import { refreshIcon } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { errorMessage, requestAPI } from './handler';
import { ALERT_TEXT, ISidebarState, POLICY_TEXT, SidebarModel, selectionKey, shortMetrics } from './model';
import { DEFAULT_SETTINGS, Selection } from './tokens';


/** What every section shows until the first answer arrives. */
const LOADING = 'Loading… (a new workspace takes a few seconds to create its store)';

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

/** Poll every `seconds` (at least one), backing off to a minute while the server refuses. */
function pollFrequency(seconds: number): { interval: number; backoff: boolean; max: number } {
  return { interval: Math.max(1, seconds) * 1000, backoff: true, max: 60 * 1000 };
}

/**
 * The "Workbench" sidebar: experiments and their runs, registered models with versions and
 * aliases, and deployments with live health. It polls the server while it is visible, so what
 * changes in a notebook or the CLI shows up without a page reload. Its data and selection live in
 * a `SidebarModel`; this view draws it.
 */
export class WorkbenchSidebar extends Widget {
  constructor(model: SidebarModel = new SidebarModel(requestAPI)) {
    super();
    this.model = model;
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
    model.changed.connect(() => this._render(model.state));

    this._poll = new Poll({
      factory: () => this.refresh(),
      frequency: pollFrequency(DEFAULT_SETTINGS.refreshInterval),
      name: 'workbench:sidebar',
      standby: () => !this.isVisible || 'when-hidden'
    });
  }

  /** The sidebar's data: what is shown, expanded and selected. */
  readonly model: SidebarModel;

  /** Emitted when the selection changes (commands refresh their enabled state). */
  get selectionChanged(): ISignal<SidebarModel, Selection> {
    return this.model.selectionChanged;
  }

  /** The selected model version or deployment, if any. */
  get selection(): Selection {
    return this.model.selection;
  }

  /** Emitted when a row is double-clicked: a version opens its review, a deployment its drift. */
  get opened(): ISignal<this, Selection> {
    return this._opened;
  }

  /** Refresh every `seconds` while visible (the `refreshInterval` setting). */
  setRefreshInterval(seconds: number): void {
    this._poll.frequency = pollFrequency(seconds);
  }

  /** Fetch everything shown and redraw what changed. */
  async refresh(): Promise<void> {
    try {
      await this.model.refresh();
      this._error.textContent = '';
    } catch (error) {
      this._error.textContent = errorMessage(error);
      if (!this.model.loaded) {
        // Nothing was ever shown: each section says why instead of staying empty.
        this._showInSections('wb-Failed', 'Could not load: see the message above');
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

  private _render(state: ISidebarState): void {
    this._renderExperiments(state);
    this._renderModels(state);
    this._renderDeployments(state);
    this._markSelected();
  }

  private _toggleExperiment(name: string): void {
    this.model.toggleExperiment(name);
    void this._poll.refresh();
  }

  private _toggleModel(name: string): void {
    this.model.toggleModel(name);
    void this._poll.refresh();
  }

  private _renderExperiments(state: ISidebarState): void {
    const list = this._experiments;
    list.replaceChildren();
    if (state.experiments.length === 0) {
      list.appendChild(el('li', 'wb-Empty', 'No experiments yet'));
    }
    for (const experiment of state.experiments) {
      const open = this.model.isExperimentOpen(experiment.name);
      const item = el('li', 'wb-Experiment wb-Row');
      item.dataset.experiment = experiment.name;
      item.appendChild(el('span', `wb-Caret${open ? ' wb-mod-open' : ''}`));
      item.appendChild(el('span', 'wb-Name', experiment.name));
      item.addEventListener('click', () => this._toggleExperiment(experiment.name));
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

  private _renderModels(state: ISidebarState): void {
    const list = this._models;
    list.replaceChildren();
    if (state.models.length === 0) {
      list.appendChild(el('li', 'wb-Empty', 'No registered models yet'));
    }
    for (const model of state.models) {
      const open = this.model.isModelOpen(model.name);
      const item = el('li', 'wb-Model wb-Row');
      item.dataset.model = model.name;
      item.appendChild(el('span', `wb-Caret${open ? ' wb-mod-open' : ''}`));
      item.appendChild(el('span', 'wb-Name', model.name));
      item.title = model.latest_version ? `${model.name}: latest version ${model.latest_version}` : model.name;
      for (const alias of Object.keys(model.aliases).sort()) {
        item.appendChild(el('span', 'wb-Badge', `@${alias} v${model.aliases[alias]}`));
      }
      item.addEventListener('click', () => this._toggleModel(model.name));
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

  private _renderDeployments(state: ISidebarState): void {
    const list = this._deployments;
    list.replaceChildren();
    if (state.deploymentsPending) {
      list.appendChild(el('li', 'wb-Empty', 'Reading the deployments’ live state…'));
    } else if (state.deployments.length === 0) {
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
      alerts.title = deployment.history ? `${deployment.alerts_detail}\n${deployment.history}` : deployment.alerts_detail;
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
    this.model.select(selectionKey(row.dataset));
    this._markSelected();
  }

  /** Mark the selected row (after a click or a redraw). */
  private _markSelected(): void {
    for (const row of Array.from(this.node.querySelectorAll<HTMLElement>('.wb-Selectable'))) {
      row.classList.toggle('jp-mod-selected', selectionKey(row.dataset) === this.model.selectedKey);
    }
  }

  private _error: HTMLDivElement;
  private _experiments: HTMLUListElement;
  private _models: HTMLUListElement;
  private _deployments: HTMLUListElement;
  private _poll: Poll;
  private _opened = new Signal<this, Selection>(this);
}
