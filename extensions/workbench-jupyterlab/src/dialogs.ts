import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IModelVersion, ITarget } from './tokens';

/** What the deploy dialog asks: where, and under which name. */
export interface IDeployChoice {
  target: string;
  name: string;
}

/** A deployment name the core accepts, made from a model name (lowercase, digits and '-'). */
export function defaultDeploymentName(model: string): string {
  const name = model
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63);
  return name || 'model';
}

/** The body of the deploy dialog: a target (of those the server lists) and a deployment name. */
class DeployForm extends Widget implements Dialog.IBodyWidget<IDeployChoice> {
  constructor(version: IModelVersion, targets: ITarget[], preferred: string) {
    super();
    this.addClass('wb-DeployForm');
    const what = document.createElement('p');
    what.textContent = `Serve ${version.name} v${version.version} (${version.uri}).`;

    this._target = document.createElement('select');
    this._target.className = 'jp-mod-styled wb-DeployForm-target';
    for (const target of targets) {
      const option = document.createElement('option');
      option.value = target.name;
      option.textContent = `${target.name}: ${target.summary}`;
      option.title = target.help;
      option.selected = target.name === preferred;
      this._target.appendChild(option);
    }
    this._name = document.createElement('input');
    this._name.className = 'jp-mod-styled wb-DeployForm-name';
    this._name.value = defaultDeploymentName(version.name);

    this.node.appendChild(what);
    this.node.appendChild(this._labelled('Target', this._target));
    this.node.appendChild(this._labelled('Deployment name', this._name));
  }

  getValue(): IDeployChoice {
    return { target: this._target.value, name: this._name.value.trim() };
  }

  private _labelled(text: string, input: HTMLElement): HTMLLabelElement {
    const label = document.createElement('label');
    label.className = 'wb-DeployForm-field';
    const span = document.createElement('span');
    span.textContent = text;
    label.appendChild(span);
    label.appendChild(input);
    return label;
  }

  private _target: HTMLSelectElement;
  private _name: HTMLInputElement;
}

/** Ask on which of `targets` (`preferred` first) to deploy `version`; `null` when cancelled. */
export async function askDeploy(
  version: IModelVersion,
  targets: ITarget[],
  preferred: string
): Promise<IDeployChoice | null> {
  const result = await showDialog<IDeployChoice>({
    title: 'Deploy model version',
    body: new DeployForm(version, targets, preferred),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Deploy' })]
  });
  return result.button.accept ? result.value : null;
}

/** Ask to confirm a change; true when accepted. */
export async function confirm(title: string, message: string, label: string): Promise<boolean> {
  const result = await showDialog({
    title,
    body: message,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label })]
  });
  return result.button.accept;
}
