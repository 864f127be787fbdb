import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IErrorReply, PageName } from './tokens';

/**
 * Call a Workbench route (`<base_url>/workbench/api/<endPoint>`) and return its JSON.
 *
 * Every call of the extension goes through here (the sidebar model, `src/model.ts`, makes them): the
 * server connection adds the token and the XSRF header. A refused call throws a `ServerConnection.ResponseError` whose message is the
 * core's (it says what to do).
 */
export async function requestAPI<T>(endPoint = '', init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'workbench', 'api', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: unknown = text;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      // not JSON: keep the text for the error message
    }
  }
  if (!response.ok) {
    const reply = data as IErrorReply;
    throw new ServerConnection.ResponseError(response, reply?.message ?? String(data));
  }
  return data as T;
}

/** The address of a main-area page (`<base_url>/workbench/apps/<page>?<query>`). */
export function pageURL(page: PageName, query: { [key: string]: string }): string {
  const settings = ServerConnection.makeSettings();
  return URLExt.join(settings.baseUrl, 'workbench', 'apps', page) + URLExt.objectToQueryString(query);
}

/** The message to show for a failed call: the core's own (it says what to do), or the fix for a
 * server that does not answer or lacks the Workbench routes. */
export function errorMessage(error: unknown): string {
  if (error instanceof ServerConnection.NetworkError) {
    return 'The Jupyter server does not answer: check that it is still running (restart it with `workbench lab`), then press Refresh.';
  }
  if (error instanceof ServerConnection.ResponseError && error.response.status === 404 && /<html/i.test(error.message)) {
    return 'The Workbench server extension is not enabled: run `jupyter server extension enable workbench_jupyterlab` and restart JupyterLab.';
  }
  return error instanceof Error ? error.message : String(error);
}
