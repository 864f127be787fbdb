/**
 * The contracts between the Workbench lab extension and its server routes
 * (`<base_url>/workbench/api/...`, see `workbench_jupyterlab/handlers.py`), the extension's
 * settings (`schema/plugin.json`) and its command ids. Field names follow the JSON the server sends.
 */

/** An MLflow experiment (`GET experiments`). */
export interface IExperiment {
  experiment_id: string;
  name: string;
  lifecycle_stage: string;
}

/** One run of an experiment (`GET runs?experiment=NAME`), newest first. */
export interface IRun {
  run_id: string;
  name: string;
  status: string;
  user: string;
  start_time: string | null;
  end_time: string | null;
  metrics: { [key: string]: number };
  params: { [key: string]: string };
}

/** A registered model (`GET models`). */
export interface IRegisteredModel {
  name: string;
  description: string;
  latest_version: string | null;
  /** alias -> version number */
  aliases: { [alias: string]: string };
  created: string;
  updated: string;
  tags: { [key: string]: string };
}

/** One version of a registered model (`GET models/NAME/versions`), newest first. */
export interface IModelVersion {
  name: string;
  version: string;
  /** `models:/NAME/VERSION` */
  uri: string;
  source: string;
  run_id: string | null;
  status: string;
  aliases: string[];
  created: string;
  user: string;
  git_commit: string | null;
  data_hash: string | null;
  description: string;
  tags: { [key: string]: string };
  /** The deployments serving this version, as `NAME (TARGET, ROLE)`. */
  deployments: string[];
}

/** A deployment with its live state (`GET deployments`). */
export interface IDeployment {
  name: string;
  target: string;
  url: string;
  model_uri: string;
  model_name: string;
  model_version: string | null;
  revision: number;
  /** e.g. `running`, `starting`, `gone` */
  state: string;
  /** The server answered its readiness probe just now. */
  healthy: boolean;
  detail: string;
  created: string;
  updated: string;
  user: string;
  challenger_uri: string | null;
  challenger_version: string | null;
  traffic: { [key: string]: unknown } | null;
  /** At a glance (`workbench.Glances`): whether it answers, ... */
  health: 'healthy' | 'starting' | 'unhealthy';
  /** ... the policy verdict of the version it serves, ... */
  policy: 'passes' | 'advisory' | 'blocked' | 'unknown';
  policy_detail: string;
  /** ... and its live window's drift/performance state. */
  alerts: 'ok' | 'drift' | 'performance' | 'drift and performance' | 'no data' | 'unknown';
  alerts_detail: string;
  /** ... and its last day from the window summaries (`DriftHistory.headline`). */
  history: string;
}

/** One option a deployment target takes (`wb.deploy(uri, target=..., NAME=value)`). */
export interface ITargetOption {
  name: string;
  /** The option's type as the target declares it (`int`, `str | None`). */
  type: string;
  /** The default, or null when the target decides. */
  default: unknown;
  help: string;
}

/** An installed deployment target (`GET targets`: `wb.deploy_targets()`), sorted by name. */
export interface ITarget {
  /** What the deploy request names (`local`, `k8s`). */
  name: string;
  /** How the target is written in full (`local`, `k8s://CONTEXT/NAMESPACE`). */
  uri: string;
  /** One line: what it runs, and where. */
  summary: string;
  description: string;
  options: ITargetOption[];
  /** The deployment can reach beyond this machine. */
  cluster: boolean;
  /** The whole help text, as `workbench targets NAME` prints it. */
  help: string;
}

/** `POST deployments`: what to serve, where (an `ITarget`'s name), and under which name. */
export interface IDeployRequest {
  model_uri: string;
  target: string;
  name?: string;
}

/** `PUT models/NAME/aliases/ALIAS`. */
export interface IAliasRequest {
  version: string;
}

/** What a snippet loads: a model version (an alias keeps following the alias), or a deployment. */
export type SnippetSubject = { model: string; alias?: string; version?: string } | { deployment: string };

/** `GET snippet?...`: code for a notebook cell. */
export interface ISnippet {
  code: string;
}

/** The body of every error answer: the core's message, which says what to do. */
export interface IErrorReply {
  message: string;
  error?: string;
}

/** The main-area pages, each a Panel app served through the Jupyter server. */
export type PageName = 'review' | 'drift';

/** What is selected in the sidebar; commands act on it when not given arguments. */
export type Selection =
  | { kind: 'version'; version: IModelVersion }
  | { kind: 'deployment'; deployment: IDeployment }
  | null;

/** The extension's settings (`schema/plugin.json`; Settings > Settings Editor > Workbench). */
export interface ISettings {
  /** Seconds between the sidebar's refreshes while it is visible. */
  refreshInterval: number;
  /** The target the deploy dialog offers first (an `ITarget`'s name). */
  defaultTarget: string;
}

/** The settings' defaults (as in the schema): what applies before or without the setting registry. */
export const DEFAULT_SETTINGS: ISettings = { refreshInterval: 4, defaultTarget: 'local' };

/** The extension's command ids. */
export namespace CommandIDs {
  export const refresh = 'workbench:refresh';
  export const deploy = 'workbench:deploy';
  export const stop = 'workbench:stop-deployment';
  export const rollback = 'workbench:rollback-deployment';
  export const setAlias = 'workbench:set-alias';
  export const openReview = 'workbench:open-review';
  export const openDrift = 'workbench:open-drift';
  export const insertSnippet = 'workbench:insert-snippet';
}
