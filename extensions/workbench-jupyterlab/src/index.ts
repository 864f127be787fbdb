import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, InputDialog, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import workbenchSvg from '../style/icons/workbench.svg';
import { askDeploy, confirm } from './dialogs';
import { errorMessage } from './handler';
import { createPageTracker, WorkbenchPage } from './pages';
import { WorkbenchSidebar } from './sidebar';
import {
  CommandIDs,
  DEFAULT_SETTINGS,
  IDeployRequest,
  IModelVersion,
  ISettings,
  ITarget,
  PageName,
  SnippetSubject
} from './tokens';

/** The sidebar's icon. */
export const workbenchIcon = new LabIcon({ name: 'workbench:icon', svgstr: workbenchSvg });

/** The plugin's id; its settings are `schema/plugin.json`. */
const PLUGIN_ID = '@workbench/jupyterlab:plugin';

/** Opens a page from the layout restorer (not shown in the palette). */
const OPEN_PAGE = 'workbench:open-page';

const CATEGORY = 'Workbench';

/** Command arguments naming a model version (else the sidebar's selection is used). */
interface IVersionArgs {
  model?: string;
  version?: string;
}

/** Command arguments naming a deployment (else the sidebar's selection is used). */
interface IDeploymentArgs {
  deployment?: string;
}

function isNotebook(widget: Widget | null | undefined): widget is Widget {
  return !!widget && widget.hasClass('jp-NotebookPanel') && !widget.isDisposed;
}

function activate(
  app: JupyterFrontEnd,
  palette: ICommandPalette,
  labShell: ILabShell | null,
  restorer: ILayoutRestorer | null,
  settingRegistry: ISettingRegistry | null
): void {
  const sidebar = new WorkbenchSidebar();
  sidebar.title.icon = workbenchIcon;
  app.shell.add(sidebar, 'left', { rank: 850 });
  // Every call to the server is one of the model's: the commands below ask it, never the server.
  const model = sidebar.model;

  const settings: ISettings = { ...DEFAULT_SETTINGS };
  if (settingRegistry) {
    const apply = (loaded: ISettingRegistry.ISettings): void => {
      Object.assign(settings, loaded.composite as Partial<ISettings>);
      sidebar.setRefreshInterval(settings.refreshInterval);
    };
    settingRegistry
      .load(PLUGIN_ID)
      .then(loaded => {
        apply(loaded);
        loaded.changed.connect(apply);
      })
      .catch(reason => console.warn('Workbench: settings not loaded, the defaults apply.', reason));
  }

  const pages = createPageTracker();

  // The notebook a snippet goes into: the one in front, else the one used last.
  let lastNotebook: Widget | null = null;
  labShell?.currentChanged.connect((_, change) => {
    if (isNotebook(change.newValue)) {
      lastNotebook = change.newValue;
    }
  });

  const selectedVersion = (args: IVersionArgs): IModelVersion | null => {
    if (args.model && args.version) {
      return { name: args.model, version: args.version, uri: `models:/${args.model}/${args.version}` } as IModelVersion;
    }
    const selection = sidebar.selection;
    return selection?.kind === 'version' ? selection.version : null;
  };
  const selectedDeployment = (args: IDeploymentArgs): string | null => {
    if (args.deployment) {
      return args.deployment;
    }
    const selection = sidebar.selection;
    return selection?.kind === 'deployment' ? selection.deployment.name : null;
  };
  const openPage = (page: PageName, query: { [key: string]: string }, label: string): WorkbenchPage => {
    const id = WorkbenchPage.idFor(page, query);
    let widget = pages.find(w => w.id === id);
    if (!widget) {
      widget = new WorkbenchPage(page, query, label, workbenchIcon);
      void pages.add(widget);
      app.shell.add(widget, 'main');
    }
    app.shell.activateById(widget.id);
    return widget;
  };

  const insert = async (code: string): Promise<void> => {
    const notebook = isNotebook(app.shell.currentWidget) ? app.shell.currentWidget : lastNotebook;
    if (!isNotebook(notebook)) {
      Notification.warning('Open a notebook first: the snippet goes into the active notebook.', {
        autoClose: 5000
      });
      return;
    }
    app.shell.activateById(notebook.id);
    await app.commands.execute('notebook:insert-cell-below');
    await app.commands.execute('notebook:replace-selection', { text: code });
  };

  const { commands } = app;
  sidebar.selectionChanged.connect(() => commands.notifyCommandChanged());
  sidebar.opened.connect((_, selection) => {
    if (selection?.kind === 'version') {
      void commands.execute(CommandIDs.openReview);
    } else if (selection?.kind === 'deployment') {
      void commands.execute(CommandIDs.openDrift);
    }
  });

  commands.addCommand(CommandIDs.refresh, {
    label: 'Refresh Workbench Sidebar',
    execute: () => sidebar.refresh()
  });

  commands.addCommand(CommandIDs.deploy, {
    label: args => {
      const version = selectedVersion(args as IVersionArgs);
      return version ? `Deploy ${version.name} v${version.version}…` : 'Deploy Model Version…';
    },
    caption: 'Serve the selected model version on one of the deployment targets installed',
    isEnabled: args => selectedVersion(args as IVersionArgs) !== null,
    execute: async args => {
      const version = selectedVersion(args as IVersionArgs);
      if (!version) {
        return;
      }
      const given = args as { target?: string; name?: string };
      let choice = given.target ? { target: given.target, name: given.name ?? '' } : null;
      if (!choice) {
        let targets: ITarget[];
        try {
          targets = await model.targets();
        } catch (error) {
          Notification.error(`Cannot list the deployment targets: ${errorMessage(error)}`, { autoClose: false });
          return;
        }
        choice = await askDeploy(version, targets, settings.defaultTarget);
      }
      if (!choice) {
        return;
      }
      const request: IDeployRequest = { model_uri: version.uri, target: choice.target };
      if (choice.name) {
        request.name = choice.name;
      }
      const deploying = model.deploy(request); // shown as "starting" while it comes up
      const outcome = deploying.then(
        d => `${d.name} is ${d.healthy ? 'up and healthy' : d.state} at ${d.url}`
      );
      Notification.promise(outcome, {
        pending: { message: `Deploying ${version.name} v${version.version} to ${choice.target}…`, options: {} },
        success: { message: result => String(result), options: { autoClose: 5000 } },
        error: { message: error => `Deploy failed: ${errorMessage(error)}`, options: { autoClose: false } }
      });
      try {
        return await deploying;
      } catch {
        return undefined; // the notification above shows why
      }
    }
  });

  commands.addCommand(CommandIDs.stop, {
    label: args => {
      const name = selectedDeployment(args as IDeploymentArgs);
      return name ? `Stop Deployment ${name}` : 'Stop Deployment';
    },
    isEnabled: args => selectedDeployment(args as IDeploymentArgs) !== null,
    execute: async args => {
      const name = selectedDeployment(args as IDeploymentArgs);
      if (!name || !(await confirm('Stop deployment', `Stop ${name}? Its prediction log and history are kept.`, 'Stop'))) {
        return;
      }
      try {
        await model.stop(name);
        Notification.success(`Stopped ${name}`, { autoClose: 4000 });
      } catch (error) {
        Notification.error(errorMessage(error), { autoClose: false });
      }
    }
  });

  commands.addCommand(CommandIDs.rollback, {
    label: args => {
      const name = selectedDeployment(args as IDeploymentArgs);
      return name ? `Roll Back Deployment ${name}` : 'Roll Back Deployment';
    },
    caption: 'Serve again the version the deployment served before its last change',
    isEnabled: args => selectedDeployment(args as IDeploymentArgs) !== null,
    execute: async args => {
      const name = selectedDeployment(args as IDeploymentArgs);
      if (!name) {
        return;
      }
      const rolling = model.rollback(name);
      Notification.promise(
        rolling.then(d => `${name} serves v${d.model_version} again`),
        {
          pending: { message: `Rolling back ${name}…`, options: {} },
          success: { message: result => String(result), options: { autoClose: 5000 } },
          error: { message: error => `Roll back failed: ${errorMessage(error)}`, options: { autoClose: false } }
        }
      );
      await rolling.catch(() => undefined);
    }
  });

  commands.addCommand(CommandIDs.setAlias, {
    label: args => {
      const version = selectedVersion(args as IVersionArgs);
      return version ? `Set Alias on ${version.name} v${version.version}…` : 'Set Alias on Model Version…';
    },
    isEnabled: args => selectedVersion(args as IVersionArgs) !== null,
    execute: async args => {
      const version = selectedVersion(args as IVersionArgs);
      if (!version) {
        return;
      }
      let alias = (args as { alias?: string }).alias;
      if (!alias) {
        const answer = await InputDialog.getText({
          title: `Alias for ${version.name} v${version.version}`,
          text: 'champion',
          okLabel: 'Set alias'
        });
        if (!answer.button.accept || !answer.value) {
          return;
        }
        alias = answer.value.trim();
      }
      try {
        await model.setAlias(version.name, alias, version.version);
        Notification.success(`@${alias} now points at ${version.name} v${version.version}`, { autoClose: 4000 });
      } catch (error) {
        Notification.error(errorMessage(error), { autoClose: false });
      }
    }
  });

  commands.addCommand(CommandIDs.openReview, {
    label: args => {
      const version = selectedVersion(args as IVersionArgs);
      return version ? `Open Review of ${version.name} v${version.version}` : 'Open Model Version Review';
    },
    isEnabled: args => selectedVersion(args as IVersionArgs) !== null,
    execute: args => {
      const version = selectedVersion(args as IVersionArgs);
      if (version) {
        return openPage('review', { model: version.name, version: version.version }, `Review ${version.name} v${version.version}`);
      }
    }
  });

  commands.addCommand(CommandIDs.openDrift, {
    label: args => {
      const name = selectedDeployment(args as IDeploymentArgs);
      return name ? `Open Drift Monitor of ${name}` : 'Open Deployment Drift Monitor';
    },
    isEnabled: args => selectedDeployment(args as IDeploymentArgs) !== null,
    execute: args => {
      const name = selectedDeployment(args as IDeploymentArgs);
      if (name) {
        return openPage('drift', { deployment: name }, `Drift ${name}`);
      }
    }
  });

  commands.addCommand(CommandIDs.insertSnippet, {
    label: args => {
      const version = selectedVersion(args as IVersionArgs);
      const deployment = selectedDeployment(args as IDeploymentArgs);
      if (version) {
        return `Insert Code Loading ${version.name} v${version.version}`;
      }
      return deployment ? `Insert Code Using Deployment ${deployment}` : 'Insert Code Snippet for Selection';
    },
    caption: 'Insert a notebook cell that loads the selected model version or deployment',
    isEnabled: args =>
      selectedVersion(args as IVersionArgs) !== null || selectedDeployment(args as IDeploymentArgs) !== null,
    execute: async args => {
      const version = selectedVersion(args as IVersionArgs);
      const deployment = selectedDeployment(args as IDeploymentArgs);
      let subject: SnippetSubject;
      if (version) {
        // An alias keeps the notebook following the alias; a bare version pins it.
        const alias = (args as { alias?: string }).alias ?? version.aliases?.[0];
        subject = alias ? { model: version.name, alias } : { model: version.name, version: version.version };
      } else if (deployment) {
        subject = { deployment };
      } else {
        return;
      }
      try {
        const snippet = await model.snippet(subject);
        await insert(snippet.code);
      } catch (error) {
        Notification.error(errorMessage(error), { autoClose: false });
      }
    }
  });

  commands.addCommand(OPEN_PAGE, {
    label: 'Open Workbench Page',
    execute: args => {
      const { page, query, label } = args as { page: PageName; query: { [key: string]: string }; label: string };
      return openPage(page, query, label);
    }
  });

  for (const command of [
    CommandIDs.deploy,
    CommandIDs.setAlias,
    CommandIDs.openReview,
    CommandIDs.openDrift,
    CommandIDs.rollback,
    CommandIDs.stop,
    CommandIDs.insertSnippet,
    CommandIDs.refresh
  ]) {
    palette.addItem({ command, category: CATEGORY });
  }

  const versionMenu = [CommandIDs.deploy, CommandIDs.setAlias, CommandIDs.openReview, CommandIDs.insertSnippet];
  versionMenu.forEach((command, rank) =>
    app.contextMenu.addItem({ command, selector: '.wb-Sidebar .wb-Version', rank })
  );
  const deploymentMenu = [CommandIDs.openDrift, CommandIDs.insertSnippet, CommandIDs.rollback, CommandIDs.stop];
  deploymentMenu.forEach((command, rank) =>
    app.contextMenu.addItem({ command, selector: '.wb-Sidebar .wb-Deployment', rank })
  );

  if (restorer) {
    restorer.add(sidebar, sidebar.id);
    void restorer.restore(pages as WidgetTracker<WorkbenchPage>, {
      command: OPEN_PAGE,
      args: widget => ({ page: widget.page, query: widget.query, label: widget.title.label }),
      name: widget => widget.id
    });
  }
}

/** The Workbench lab extension: sidebar, commands and main-area pages. */
const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'The Workbench sidebar, commands and pages in JupyterLab.',
  autoStart: true,
  requires: [ICommandPalette],
  optional: [ILabShell, ILayoutRestorer, ISettingRegistry],
  activate
};

export default plugin;
