/* emseg-application.c — see the header. Accelerators live in one table so the
 * shortcuts window, the menus and this file agree. */
#include "emseg-application.h"

#include "emseg-resources.h"
#include "emseg-window.h"

struct _EmsegApplication {
  GtkApplication parent_instance;
};

G_DEFINE_FINAL_TYPE (EmsegApplication, emseg_application, GTK_TYPE_APPLICATION)

void
emseg_resources_ensure_registered (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done))
    {
      emseg_register_resource ();
      g_once_init_leave (&done, 1);
    }
}

static void
action_quit (GSimpleAction *action, GVariant *param, gpointer data)
{
  GApplication *app = data;
  GList *windows = g_list_copy (gtk_application_get_windows (GTK_APPLICATION (app)));

  /* Closing the windows (not g_application_quit) runs their dispose, so pending work is
   * dropped in order, and a window still training asks first; the application exits
   * when the last one is gone. A copy: closing a window takes it off the list. */
  for (GList *w = windows; w != NULL; w = w->next)
    gtk_window_close (w->data);
  g_list_free (windows);
}

static void
action_about (GSimpleAction *action, GVariant *param, gpointer data)
{
  static const char *authors[] = { "The emseg developers", NULL };
  GtkWindow *parent = gtk_application_get_active_window (GTK_APPLICATION (data));

  gtk_show_about_dialog (parent,
                         "program-name", "emseg",
                         "logo-icon-name", EMSEG_APPLICATION_ID,
                         "version", PACKAGE_VERSION,
                         "comments", "Segment electron-microscopy stacks with a very deep residual "
                                     "fully convolutional network (Drozdzal et al. 2016).",
                         "license-type", GTK_LICENSE_MIT_X11,
                         "authors", authors,
                         NULL);
}

static void
action_open (GSimpleAction *action, GVariant *param, gpointer data)
{
  GtkWindow *window = gtk_application_get_active_window (GTK_APPLICATION (data));

  if (window != NULL)
    gtk_widget_activate_action (GTK_WIDGET (window), "win.open", NULL);
}

static const GActionEntry app_entries[] = {
  { .name = "quit", .activate = action_quit },
  { .name = "about", .activate = action_about },
  { .name = "open", .activate = action_open },
};

static const struct {
  const char *action;
  const char *accels[4];
} accels[] = {
  { "app.quit", { "<Control>q", NULL } },
  { "win.open", { "<Control>o", NULL } },
  { "win.new-project", { "<Control>n", NULL } },
  { "win.import-stack", { "<Control>i", NULL } },
  { "win.export", { "<Control>e", NULL } },
  { "win.undo", { "<Control>z", NULL } },
  { "win.redo", { "<Control><Shift>z", "<Control>y", NULL } },
  { "win.zoom-in", { "<Control>plus", "<Control>equal", "<Control>KP_Add", NULL } },
  { "win.zoom-out", { "<Control>minus", "<Control>KP_Subtract", NULL } },
  { "win.zoom-fit", { "<Control>0", NULL } },
  { "win.zoom-one", { "<Control>1", NULL } },
  { "win.next-slice", { "Page_Down", "<Control>Page_Down", NULL } },
  { "win.prev-slice", { "Page_Up", "<Control>Page_Up", NULL } },
  { "win.estimate-uncertainty", { "<Control>u", NULL } },
  { "win.label-from-prediction", { "<Control>l", NULL } },
  { "win.stop-work", { "Escape", NULL } },
};

static void
emseg_application_startup (GApplication *app)
{
  g_autoptr (GtkCssProvider) css = gtk_css_provider_new ();

  emseg_resources_ensure_registered ();
  G_APPLICATION_CLASS (emseg_application_parent_class)->startup (app);

  g_action_map_add_action_entries (G_ACTION_MAP (app), app_entries, G_N_ELEMENTS (app_entries), app);
  for (guint i = 0; i < G_N_ELEMENTS (accels); i++)
    gtk_application_set_accels_for_action (GTK_APPLICATION (app), accels[i].action, accels[i].accels);

  gtk_css_provider_load_from_resource (css, "/org/emseg/Workbench/style.css");
  gtk_style_context_add_provider_for_display (gdk_display_get_default (), GTK_STYLE_PROVIDER (css),
                                              GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
}

static void
emseg_application_activate (GApplication *app)
{
  GtkWindow *window = gtk_application_get_active_window (GTK_APPLICATION (app));

  if (window == NULL)
    {
      EmsegWindow *w = emseg_window_new (GTK_APPLICATION (app));

      /* No project given: the first run shows a working demo rather than an empty window. */
      emseg_window_open_demo (w, NULL);
      window = GTK_WINDOW (w);
    }
  gtk_window_present (window);
}

static void
emseg_application_open (GApplication *app, GFile **files, int n_files, const char *hint)
{
  for (int i = 0; i < n_files; i++)
    {
      EmsegWindow *w = emseg_window_new (GTK_APPLICATION (app));
      g_autofree char *path = g_file_get_path (files[i]);

      gtk_window_present (GTK_WINDOW (w));
      if (path == NULL || !emseg_window_open_path (w, path, NULL))
        emseg_window_open_demo (w, NULL);
    }
}

static void
emseg_application_class_init (EmsegApplicationClass *klass)
{
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);

  app_class->startup = emseg_application_startup;
  app_class->activate = emseg_application_activate;
  app_class->open = emseg_application_open;
}

static void
emseg_application_init (EmsegApplication *self)
{
}

EmsegApplication *
emseg_application_new (GApplicationFlags flags)
{
  emseg_resources_ensure_registered ();
  return g_object_new (EMSEG_TYPE_APPLICATION,
                       "application-id", EMSEG_APPLICATION_ID,
                       "resource-base-path", "/org/emseg/Workbench",
                       "flags", flags | G_APPLICATION_HANDLES_OPEN,
                       NULL);
}
