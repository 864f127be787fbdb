import { MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { IFrame, LabIcon } from '@jupyterlab/ui-components';

import { pageURL } from './handler';
import { PageName } from './tokens';

/** A main-area tab showing one of the Workbench's Panel pages. */
export class WorkbenchPage extends MainAreaWidget<IFrame> {
  constructor(
    readonly page: PageName,
    readonly query: { [key: string]: string },
    label: string,
    icon?: LabIcon
  ) {
    // The page is a Panel (Bokeh) app: it needs scripts, and same-origin for its websocket and
    // the Jupyter server's login cookie.
    const content = new IFrame({
      sandbox: ['allow-scripts', 'allow-same-origin', 'allow-forms', 'allow-popups', 'allow-downloads']
    });
    content.url = pageURL(page, query);
    super({ content });
    this.id = WorkbenchPage.idFor(page, query);
    this.addClass('wb-Page');
    this.addClass(`wb-Page-${page}`);
    this.title.label = label;
    this.title.closable = true;
    if (icon) {
      this.title.icon = icon;
    }
  }

  /** One tab per page and query: opening it again shows the open one. */
  static idFor(page: PageName, query: { [key: string]: string }): string {
    const parts = Object.keys(query)
      .sort()
      .map(key => `${key}-${query[key]}`);
    return ['workbench', page, ...parts].join('-').replace(/[^A-Za-z0-9_-]/g, '_');
  }
}

/** Tracks the open pages, so the layout restorer reopens them after a reload. */
export function createPageTracker(): WidgetTracker<WorkbenchPage> {
  return new WidgetTracker<WorkbenchPage>({ namespace: 'workbench-pages' });
}
